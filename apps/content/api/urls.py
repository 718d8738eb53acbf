from rest_framework.routers import SimpleRouter

from apps.content.api.views import ContentViewSet

router = SimpleRouter()
router.register("contents", ContentViewSet, basename="content")

urlpatterns = router.urls
