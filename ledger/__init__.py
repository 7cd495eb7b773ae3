"""The credit ledger: the book where credits are issued, move between enterprises, are surrendered
against obligations and retired. Double entry, 1 credit = 1 t CO2, every lot carrying its vintage."""
