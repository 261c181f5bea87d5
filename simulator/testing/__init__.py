"""Testing aids for code that uses the translation API: the pytest plugin (fixture `translation_server`)."""
