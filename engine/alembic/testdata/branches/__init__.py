revision = compute()
