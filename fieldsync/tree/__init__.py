"""The tablet tree: its rules and names, customer folders, categories, visits, photos, check, camera inbox."""
