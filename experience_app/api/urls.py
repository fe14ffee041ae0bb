from django.urls import path

from experience_app.api import reader_views, views

urlpatterns = [
    path("experience/home/", views.HomeView.as_view(), name="experience-home"),
    path(
        "experience/home/sections/<str:key>/",
        views.SectionPageView.as_view(),
        name="experience-section",
    ),
    path(
        "experience/interactions/",
        views.InteractionsView.as_view(),
        name="experience-interactions",
    ),
    path("me/interests/", views.InterestsView.as_view(), name="me-interests"),
    # User control (issue 13): what INBO learned, settings, removals, mutes, reset.
    path("me/profile/", reader_views.ReaderProfileView.as_view(), name="me-profile"),
    path(
        "me/profile/categories/<int:target_id>/",
        reader_views.ForgetCategoryView.as_view(),
        name="me-profile-category",
    ),
    path(
        "me/profile/providers/<int:target_id>/",
        reader_views.ForgetProviderView.as_view(),
        name="me-profile-provider",
    ),
    path("me/profile/reset/", reader_views.ResetView.as_view(), name="me-profile-reset"),
    path("me/mutes/", reader_views.MutesView.as_view(), name="me-mutes"),
    path("me/mutes/<str:kind>/<int:target_id>/", reader_views.MuteView.as_view(), name="me-mute"),
]
