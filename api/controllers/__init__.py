"""HTTP controllers: thin translations from requests to calls on the ledger and back."""
