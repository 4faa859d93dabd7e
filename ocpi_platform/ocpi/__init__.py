"""The OCPI 2.2.1 protocol core: shared by every module, imports no app."""
