from django.core.management.base import BaseCommand, CommandError

from apps.access.services import api_token_create, user_get_or_create
from apps.content.audit import audit_command
from apps.content.scopes import SCOPES, UnknownScope, scopes_parse


class Command(BaseCommand):
    help = "Print a new bearer token for USER, creating the user if missing."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--creator", action="store_true", help="Allow the user to upload.")
        parser.add_argument("--name", default="", help="A label for the token.")
        parser.add_argument(
            "--scope",
            action="append",
            dest="scopes",
            metavar="SCOPE",
            help=f"What the token may do: {', '.join(SCOPES)}. Repeat it or separate scopes "
            "with commas; without it the token holds every scope.",
        )

    def handle(self, *args, username: str, creator: bool, name: str, scopes, **options):
        try:
            chosen = scopes_parse(scopes) if scopes is not None else None
        except UnknownScope as error:
            raise CommandError(error.message) from None
        with audit_command("create_api_token"):
            user, created = user_get_or_create(username=username, creator=creator)
            _, clear = api_token_create(user=user, name=name or "create_api_token", scopes=chosen)
        if created:
            self.stderr.write(f"Created user {username}{' (creator)' if creator else ''}.")
        self.stdout.write(clear)
