from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.access.services import demo_account_ensure


class Command(BaseCommand):
    help = "Ensure the demo creator exists and print its login (kept in var/demo-login)."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo")

    def handle(self, *args, username: str, **options):
        saved = Path(settings.VAR_DIR) / "demo-login"
        password = saved.read_text().strip() if saved.exists() else None
        _, password = demo_account_ensure(username=username, password=password)
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(password + "\n")
        saved.chmod(0o600)
        self.stdout.write(f"Demo creator: user {username!r}, password {password!r}")
