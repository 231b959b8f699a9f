"""The expression language: parsing, the function table, analysis and closure building."""
