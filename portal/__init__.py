"""The management platform (碳积分管理平台): the park office and each enterprise on one web application."""
