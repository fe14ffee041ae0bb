from django.urls import path
from rest_framework.routers import SimpleRouter

from reading_app.api import views

router = SimpleRouter(trailing_slash=True)
router.register("providers", views.ProviderViewSet, basename="provider")
router.register("items", views.ItemViewSet, basename="item")
router.register("subscriptions", views.SubscriptionViewSet, basename="subscription")

urlpatterns = [
    *router.urls,
    path("reading/progress/<int:item_id>/", views.ProgressView.as_view(), name="reading-progress"),
    path("reading/continue/", views.ContinueReadingView.as_view(), name="reading-continue"),
    path("reading/saves/", views.SavedListView.as_view(), name="reading-saves"),
    path("reading/saves/<int:item_id>/", views.SavedItemView.as_view(), name="reading-save"),
]
