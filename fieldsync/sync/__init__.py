"""Tree to server: the engine's reconcile-and-push pass, its state cache, the watcher and the daemon."""
