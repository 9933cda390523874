def pytest_addoption(parser):
    parser.addoption("--exports", required=True, help="the folder .ci/runtime_only/build.py wrote")
