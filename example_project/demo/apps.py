from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "example_project.demo"
    label = "demo"
    verbose_name = "Example project demo"

    def ready(self) -> None:
        from . import checks  # noqa: F401 - registers the demo's system checks
