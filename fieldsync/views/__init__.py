"""The tablet's pages (query page, customer and visit pages), derived from the tree."""
