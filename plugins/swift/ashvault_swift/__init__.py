"""ashvault driver for OpenStack Swift (python-swiftclient; Keystone v2/v3 through keystoneauth1)."""
