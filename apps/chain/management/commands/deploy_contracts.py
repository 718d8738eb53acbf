from django.core.management.base import BaseCommand, CommandError

from apps.chain.chains import ChainNotConfigured, SignerMissing
from apps.chain.models import ContractKind
from apps.chain.services import contract_deploy
from apps.chain.transactions import GasTooExpensive, Reverted
from streamgate.exceptions import DomainError


class Command(BaseCommand):
    help = "Deploy ContentRegistry (and with --with-test-tokens TestNFT721, TestNFT1155 and the "
    help += "TestToken ERC-20) with the "
    help += "account of CHAIN_SIGNER_KEY, and record the addresses."

    def add_arguments(self, parser):
        parser.add_argument("--chain", required=True, help="CAIP-2 id, e.g. eip155:31337.")
        parser.add_argument("--with-test-tokens", action="store_true")

    def handle(self, *args, chain: str, with_test_tokens: bool, **options):
        plan = [(ContractKind.REGISTRY, ())]
        if with_test_tokens:
            plan += [
                (ContractKind.NFT721, ("StreamGate Test Pass", "SGPASS")),
                (ContractKind.NFT1155, ("https://streamgate.invalid/tokens/{id}.json",)),
                # A 6-decimal ERC-20 with permit, to price offers in (like USDC).
                (ContractKind.TOKEN, ("StreamGate Test Dollar", "SGUSD", 6)),
            ]
        for kind, constructor_args in plan:
            try:
                record = contract_deploy(caip2=chain, kind=kind, args=constructor_args)
            except (
                ChainNotConfigured,
                SignerMissing,
                GasTooExpensive,
                Reverted,
                DomainError,
            ) as error:
                raise CommandError(str(error)) from error
            self.stdout.write(
                f"{record.get_kind_display()}: {record.address} (block {record.deployed_block})"
            )
