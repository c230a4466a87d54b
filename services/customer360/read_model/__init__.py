"""The 360 view's tables: the projection that writes them, and the queries that read them."""
