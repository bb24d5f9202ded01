"""The conformance kit every driver runs, shipped in the core wheel.

A driver's test module is a few lines::

    from ashvault.testing.contract import DriverContract, ObjectStoreContract

    class TestMyStore(ObjectStoreContract):
        @pytest.fixture
        def store(self, tmp_path): return MyObjectStore(...)

    class TestMyDriver(DriverContract):
        @pytest.fixture
        def driver(self, ...): return make_driver(...)

See :mod:`ashvault.testing.contract` for what each suite checks and which fixtures it needs.
"""
