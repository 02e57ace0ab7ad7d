"""Names vulture cannot see used: called by a framework, or attributes a library reads.

Each line is a use vulture cannot find by itself; the comment says who uses it.
"""

from vulture.whitelist_utils import Whitelist

_ = Whitelist()

# watchdog calls FileSystemEventHandler.on_any_event for every event.
_.on_any_event
# click.Group's hooks, overridden so that commands load lazily.
_.list_commands
_.get_command
# paramiko reads these attributes of its Transport and SFTPClient objects.
_.banner_timeout
_.handshake_timeout
_.auth_timeout
_.channel_timeout
_.MAX_REQUEST_SIZE
_.key_type
# openpyxl reads the sheet's frozen panes.
_.freeze_panes
# Signal handlers take (signum, frame) by the signal module's contract.
_.frame
# The exit-code contract (spec.md) names success too, beside EXIT_WARNING and EXIT_ERROR.
_.EXIT_OK
# Kept in the state cache for people reading it (when a file last reached the server).
_.pushed_at
# BD-09 (Baidu) conversions: the map page's JavaScript converts for Baidu links; these are its
# reference in Python, against which tests/test_map_page.py checks the page.
_.wgs84_to_bd09
_.bd09_to_wgs84
# click calls ClickException.show to print an error; io calls RawIOBase.readable.
_.show
_.readable
# The matching rule for one value; the index applies it to whole columns at once, and
# tests/test_find.py checks the index against this one-value form.
_.field_text
# Scripts and tests that drive the engine ask whether a pass left everything on the server.
_.complete
# pybabel calls the extractor named in babel.cfg; the click words are there for extraction only.
_.extract_help
_.CLICK_MESSAGES
_.CLICK_PLURALS
# ui.language is validated with the rest of config.yaml, and read before parsing by ui_language().
_.ui
# click caches each command's --help option; cli/base.translate_help clears it for the new language.
_._help_option
# paramiko hands the answer to a request sent without waiting to the object it was sent for
# (transport/pipelined.Replies) by calling its _async_response.
_._async_response
