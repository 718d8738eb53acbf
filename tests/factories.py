import factory
from django.contrib.auth import get_user_model

from apps.access.services import creator_grant
from apps.content.models import Content, ContentStatus, Rendition


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pass-word-123")


class CreatorFactory(UserFactory):
    username = factory.Sequence(lambda n: f"creator{n}")

    @factory.post_generation
    def creator(self, create, extracted, **kwargs):
        if create:
            creator_grant(user=self)


class StaffFactory(UserFactory):
    username = factory.Sequence(lambda n: f"staff{n}")
    is_staff = True


class ContentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Content

    owner = factory.SubFactory(CreatorFactory)
    title = factory.Sequence(lambda n: f"Video {n}")
    status = ContentStatus.DRAFT


class RenditionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Rendition

    content = factory.SubFactory(ContentFactory, status=ContentStatus.READY)
    name = "720p"
    width = 1280
    height = 720
    bitrate = 3_000_000
    codecs = "avc1.64001f,mp4a.40.2"
    playlist = factory.LazyAttribute(lambda r: f"renditions/{r.content.id}/job/media_0.m3u8")


class WalletFactory(factory.django.DjangoModelFactory):
    """A wallet as a sign-in leaves it (tests that need one without signing in)."""

    class Meta:
        model = "access.WalletAccount"

    user = factory.SubFactory(UserFactory)
    namespace = "eip155"
    chain = "eip155:1"
    address = factory.Sequence(lambda n: f"0x{n + 1:040x}")
    kind = "key"
    address_key = factory.LazyAttribute(
        lambda w: f"{w.chain}:{w.address}" if w.kind == "contract" else f"{w.namespace}:{w.address}"
    )


def registrable_content(**fields) -> Content:
    """A ready content whose owner has an Ethereum wallet linked: registries record the
    creator's own wallet, so registering needs one."""
    content = ContentFactory(status=ContentStatus.READY, **fields)
    WalletFactory(user=content.owner)
    return content
