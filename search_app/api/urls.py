from django.urls import path

from search_app.api import views

urlpatterns = [
    path("search/", views.SearchView.as_view(), name="search"),
    path("search/clicks/", views.ClickView.as_view(), name="search-clicks"),
    path("search/analytics/", views.AnalyticsView.as_view(), name="search-analytics"),
]
