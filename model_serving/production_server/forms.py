"""The browser form: five rows, each a repository named ``owner/name`` OR described by hand (never its stars).

Validation happens on the server (no JavaScript needed): WTForms checks each field's type and range and keeps
its message next to the input; then each row goes through the same ``inputs`` validation as the JSON API, so
both doors accept the same things. CSRF protection comes from Flask-WTF (``FlaskForm``; a POST without a valid
token is refused with 400 by ``CSRFProtect``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from flask_wtf import FlaskForm
from wtforms import BooleanField, FieldList, Form, FormField, IntegerField, SelectField, StringField
from wtforms.fields import DateField
from wtforms.utils import unset_value
from wtforms.validators import Length, NumberRange, Optional, Regexp, ValidationError

from data_collection.schema import TOPICS_SEPARATOR
from model_serving.production_server.inputs import (
    COUNT_LIMITS,
    FULL_NAME_PATTERN,
    InputError,
    RequestItem,
    parse_items,
)
from model_serving.production_server.settings import FORM_ROWS

FLAG_FIELDS = ("has_wiki", "has_pages", "has_issues", "has_projects", "has_discussions")
HAND_FIELDS = ("language", "license_spdx", "forks_count", "open_issues_count", "size", "topics_count",
               "created_at", "pushed_at", "owner_type")


def _count_field(label: str, column: str) -> IntegerField:
    limit = COUNT_LIMITS[column]
    return IntegerField(label, validators=[
        Optional(),
        NumberRange(min=0, max=limit, message=f"Enter a whole number from 0 to {limit:,}."),
    ])


class RepositoryRow(Form):
    """One row; a sub-form without its own CSRF token (the page's form carries it)."""

    full_name = StringField("owner/name", validators=[
        Optional(),
        Length(max=140),
        Regexp(FULL_NAME_PATTERN, message="Use owner/name, e.g. pallets/flask (letters, digits, - . _)."),
    ])
    language = StringField("Language", validators=[Optional(), Length(max=100)])
    license_spdx = StringField("License (SPDX)", validators=[Optional(), Length(max=100)])
    forks_count = _count_field("Forks", "forks_count")
    open_issues_count = _count_field("Open issues", "open_issues_count")
    size = _count_field("Size (KB)", "size")
    topics_count = IntegerField("Topics", validators=[
        Optional(), NumberRange(min=0, max=20, message="GitHub allows 0 to 20 topics."),
    ])
    created_at = DateField("Created", validators=[Optional()])
    pushed_at = DateField("Last push", validators=[Optional()])
    has_wiki = BooleanField("wiki")
    has_pages = BooleanField("pages")
    has_issues = BooleanField("issues")
    has_projects = BooleanField("projects")
    has_discussions = BooleanField("discussions")
    owner_type = SelectField("Owner", choices=[("", "unknown"), ("User", "User"),
                                               ("Organization", "Organization")],
                             validators=[Optional()])

    def by_hand(self) -> bool:
        given = any(self[name].data not in (None, "") for name in HAND_FIELDS)
        return given or any(self[name].data for name in FLAG_FIELDS)

    def is_empty(self) -> bool:
        return not (self.full_name.data or "").strip() and not self.by_hand()

    def validate(self, extra_validators: Any = None) -> bool:
        ok = super().validate(extra_validators)
        # Not an inline validator: Optional() stops the chain of an empty field before it would run.
        if self.by_hand() and self.created_at.data is None and not self.created_at.errors:
            self.created_at.errors = [*self.created_at.errors, "Needed when describing a repository by hand."]
            ok = False
        return ok

    def validate_pushed_at(self, field: DateField) -> None:
        created = self.created_at.data
        if field.data is not None and created is not None and field.data < created:
            raise ValidationError("The last push cannot come before creation.")

    def to_item(self) -> dict[str, Any]:
        """The API-shaped item of this row (``{"full_name"}`` alone means: look it up)."""
        name = (self.full_name.data or "").strip() or None
        if not self.by_hand():
            return {"full_name": name}
        item: dict[str, Any] = {"full_name": name}
        for column in ("language", "license_spdx", "owner_type"):
            item[column] = (self[column].data or "").strip() or None
        for column in ("forks_count", "open_issues_count", "size"):
            item[column] = self[column].data
        topics = self.topics_count.data or 0
        # The model reads only how many topics there are; the form asks the count, not the words.
        item["topics"] = TOPICS_SEPARATOR.join(f"topic-{i + 1}" for i in range(topics)) or None
        for column in ("created_at", "pushed_at"):
            value: date | None = self[column].data
            item[column] = value.isoformat() if value else None
        for column in FLAG_FIELDS:
            item[column] = bool(self[column].data)
        return item


class FixedRows(FieldList):
    """Exactly ``min_entries`` rows named ``rows-0`` .. ``rows-4``, each reading only its own inputs.

    Why not FieldList's own processing: WTForms 3.3 renumbers the submitted rows (``rows-0`` and ``rows-2``
    become entries 0 and 1), then pads with ``rows-2``, which reads row 2's inputs a second time: a client
    that leaves out a row's inputs got another row predicted twice. A browser sends every row; a script may
    not.
    """

    def process(self, formdata: Any, data: Any = unset_value, extra_filters: Any = None) -> None:
        self.last_index = -1
        self.entries = []
        self.object_data = data
        for _ in range(self.min_entries or 0):
            self._add_entry(formdata)


class PredictForm(FlaskForm):
    rows = FixedRows(FormField(RepositoryRow), min_entries=FORM_ROWS, max_entries=FORM_ROWS)
    #: Named repositories are looked up on GitHub even when the served model's dataset knows them.
    fresh = BooleanField("Fresh data: ask GitHub even for repositories the model was trained on")

    def validate_rows(self, field: FieldList) -> None:
        if all(row.form.is_empty() for row in field.entries):
            raise ValidationError("Name or describe at least one repository.")

    def items(self) -> list[RequestItem] | None:
        """Validated items of the non-empty rows (in row order), or None with messages put on the fields."""
        filled = [(index, row.form) for index, row in enumerate(self.rows.entries) if not row.form.is_empty()]
        now = datetime.now(UTC)
        try:
            return parse_items([form.to_item() for _, form in filled], now=now, prefix="rows")
        except InputError as exc:
            for where, reason in exc.details.items():
                # "rows[2].created_at" -> row 2 of the filled ones, field created_at
                head, _, column = where.partition(".")
                position = int(head[len("rows["):-1])
                form = filled[position][1]
                target = form[column] if column in form._fields else form.full_name
                target.errors = [*target.errors, reason]
            return None
