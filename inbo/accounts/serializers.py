from __future__ import annotations

from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from inbo.api.fields import StrictCharField, StrictEmailField, StrictRegexField

User = get_user_model()


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ("id", "username", "email", "date_joined")
        read_only_fields = fields


class RegisterSerializer(serializers.Serializer):
    username = StrictRegexField(
        r"^[\w.@+-]+$",
        max_length=150,
        min_length=3,
        error_messages={"invalid": "Letters, digits and @/./+/-/_ only."},
    )
    email = StrictEmailField(max_length=254)
    password = StrictCharField(write_only=True, min_length=8, max_length=128)

    # Whether the username or the email is in use is decided by the service, after these
    # checks, as one generic 409 that names neither (inbo.accounts.services.AccountExists).

    def validate_email(self, value: str) -> str:
        return User.objects.normalize_email(value)

    def validate(self, attrs: dict) -> dict:
        candidate = User(username=attrs["username"], email=attrs["email"])
        try:
            password_validation.validate_password(attrs["password"], user=candidate)
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"password": exc.messages}) from exc
        return attrs


class TokenRequestSerializer(serializers.Serializer):
    username = StrictCharField(max_length=150)
    password = StrictCharField(max_length=128, write_only=True, trim_whitespace=False)


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Send as `Authorization: Token <token>`.")
    expires_at = serializers.DateTimeField(
        allow_null=True,
        help_text="When the token stops working (TOKEN_TTL_HOURS after it was issued); "
        "then `POST /auth/token/` issues a new one. Null when tokens never expire.",
    )
    user = UserSerializer()
