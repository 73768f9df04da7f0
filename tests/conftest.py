pytest_plugins = [
    "renderer.testing.kubeapi.fixture",
    "renderer.testing.aws_fixture",
]
