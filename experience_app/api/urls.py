from django.urls import path

from experience_app.api import views

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
]
