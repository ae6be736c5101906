"""Bad input is refused with a clear one-line error before anything is sent to a worker (no broker here).

The app's broker does not exist: each of these requests must be refused by validation, so none may reach
``predict_batch`` (which would answer 503).
"""

from __future__ import annotations

import json

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support import csrf_token, form_data


def test_wrong_content_type_is_415(offline_client: FlaskClient) -> None:
    answer = offline_client.post("/api/v1/predict", data="repositories=a/b",
                                 content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 415
    assert answer.json == {"error": "unsupported content type: send application/json",
                           "details": {"content_type": "application/x-www-form-urlencoded"}}


def test_malformed_json_is_400_with_position(offline_client: FlaskClient) -> None:
    answer = offline_client.post("/api/v1/predict", data='{"repositories": [',
                                 content_type="application/json")
    assert answer.status_code == 400
    assert answer.json["error"].startswith("malformed JSON: ")
    assert answer.json["details"] == {"line": 1, "column": 19}


def test_nan_is_not_json(offline_client: FlaskClient) -> None:
    body = '{"repositories": [{"forks_count": NaN}]}'
    answer = offline_client.post("/api/v1/predict", data=body, content_type="application/json")
    assert answer.status_code == 400
    assert "NaN is not JSON" in answer.json["error"]


def test_ten_megabyte_body_is_413(offline_client: FlaskClient) -> None:
    body = json.dumps({"repositories": [{"full_name": "a/b", "description": "x" * (10 * 1024 * 1024)}]})
    answer = offline_client.post("/api/v1/predict", data=body, content_type="application/json")
    assert answer.status_code == 413
    assert answer.json["error"] == "request body too large: the limit is 1 MB"


def test_101_repositories_is_400(offline_client: FlaskClient) -> None:
    body = {"repositories": [{"full_name": f"owner/repo{i}"} for i in range(101)]}
    answer = offline_client.post("/api/v1/predict", json=body)
    assert answer.status_code == 400
    assert answer.json["error"] == "repositories must hold 1 to 100 items, got 101"


def test_empty_list_and_wrong_shapes_are_400(offline_client: FlaskClient) -> None:
    for body, expected in [
        ({"repositories": []}, "repositories must hold 1 to 100 items, got 0"),
        ([{"full_name": "a/b"}], 'the body must be a JSON object: {"repositories": [...]}'),
        ({"repos": []}, 'the body must hold "repositories": a list of 1 to 100 items'),
    ]:
        answer = offline_client.post("/api/v1/predict", json=body)
        assert answer.status_code == 400, body
        assert answer.json["error"] == expected


def test_negative_absurd_and_mistyped_values_name_each_field(offline_client: FlaskClient) -> None:
    body = {"repositories": [
        {"full_name": "a/b", "forks_count": -3, "created_at": "2020-01-01"},
        {"full_name": "c/d", "size": 10**15, "created_at": "2020-01-01"},
        {"full_name": "e/f", "open_issues_count": "many", "created_at": "not a date"},
        {"full_name": "g/h", "created_at": "2999-01-01", "has_wiki": "perhaps"},
        {"full_name": "i/j", "forks_count": 2.5, "owner_type": "Robot"},
        {},
        "owner/name",
    ]}
    answer = offline_client.post("/api/v1/predict", json=body)
    assert answer.status_code == 400
    details = answer.json["details"]
    assert details["repositories[0].forks_count"] == "Input should be greater than or equal to 0"
    assert details["repositories[1].size"].startswith("must be at most 1,000,000,000")
    assert "repositories[2].open_issues_count" in details
    assert "repositories[2].created_at" in details
    assert details["repositories[3].created_at"] == "must not be in the future"
    assert "repositories[3].has_wiki" in details
    assert details["repositories[4].forks_count"] == "must be a whole number"
    assert "repositories[4].owner_type" in details
    assert details["repositories[5]"].startswith("empty")
    assert details["repositories[6]"].startswith("must be an object")
    assert "\n" not in answer.json["error"]
    assert answer.json["error"].startswith("invalid input: repositories[0].forks_count")


def test_html_in_a_name_is_refused_in_json(offline_client: FlaskClient) -> None:
    answer = offline_client.post("/api/v1/predict",
                                 json={"repositories": [{"full_name": "<script>alert(1)</script>/x"}]})
    assert answer.status_code == 400
    assert answer.json["details"] == {
        "repositories[0].full_name": "must look like owner/name (letters, digits, '-', '.', '_')"}


def test_form_page_has_five_rows_and_no_script(offline_client: FlaskClient) -> None:
    page = offline_client.get("/").get_data(as_text=True)
    for index in range(5):
        assert f'name="rows-{index}-full_name"' in page
        assert f'name="rows-{index}-created_at"' in page
    assert 'name="rows-5-full_name"' not in page
    assert "<script" not in page
    assert "stargazers" not in page.lower()  # stars are never asked


def test_form_without_csrf_token_is_400(offline_client: FlaskClient) -> None:
    answer = offline_client.post("/predict", data=form_data([{"full_name": "pallets/flask"}], token=None))
    assert answer.status_code == 400
    assert "The CSRF token is missing" in answer.get_data(as_text=True)


def test_empty_form_asks_for_a_repository(offline_client: FlaskClient) -> None:
    answer = offline_client.post("/predict", data=form_data([], csrf_token(offline_client)))
    assert answer.status_code == 400
    assert "Name or describe at least one repository." in answer.get_data(as_text=True)


def test_malformed_and_out_of_range_form_fields_get_messages_next_to_them(
    offline_client: FlaskClient,
) -> None:
    rows = [
        {"full_name": "a/b", "forks_count": "lots", "created_at": "2020-01-01"},
        {"forks_count": -1, "created_at": "2020-13-45"},
        {"size": 10**13, "created_at": "2020-01-01", "pushed_at": "2019-01-01"},
        {"language": "Python"},  # by hand, but no creation date
        {"topics_count": 99, "created_at": "2999-01-01"},
    ]
    answer = offline_client.post("/predict", data=form_data(rows, csrf_token(offline_client)))
    assert answer.status_code == 400
    page = answer.get_data(as_text=True)
    assert "Not a valid integer value." in page
    assert "Enter a whole number from 0 to 10,000,000." in page
    assert "Not a valid date value." in page
    assert "Enter a whole number from 0 to 1,000,000,000." in page
    assert "The last push cannot come before creation." in page
    assert "Needed when describing a repository by hand." in page
    assert "GitHub allows 0 to 20 topics." in page
    # The message sits inside the same <label> as its input.
    forks = page[page.index('name="rows-1-forks_count"'):]
    assert forks.index("Enter a whole number from 0 to 10,000,000.") < forks.index("</label>")
    # What the person typed is kept in the form.
    assert 'value="lots"' in page


def test_future_date_caught_by_shared_validation_is_shown_on_its_field(offline_client: FlaskClient) -> None:
    rows = [{"full_name": "a/b", "forks_count": 3, "created_at": "2999-01-01"}]
    answer = offline_client.post("/predict", data=form_data(rows, csrf_token(offline_client)))
    assert answer.status_code == 400
    page = answer.get_data(as_text=True)
    created = page[page.index('name="rows-0-created_at"'):]
    assert created.index("must not be in the future") < created.index("</label>")


def test_script_in_owner_name_is_escaped_in_the_page(offline_client: FlaskClient) -> None:
    evil = '<script>alert("x")</script>/repo'
    data = form_data([{"full_name": evil}], csrf_token(offline_client))
    answer = offline_client.post("/predict", data=data)
    assert answer.status_code == 400
    page = answer.get_data(as_text=True)
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;/repo" in page
    assert "Use owner/name" in page


def test_unknown_route_in_api_is_json_404(offline_client: FlaskClient) -> None:
    answer = offline_client.get("/api/v1/nothing")
    assert answer.status_code == 404
    assert answer.json == {"error": "no such page", "details": {}}


def test_healthz_needs_nothing_else(offline_client: FlaskClient) -> None:
    assert offline_client.get("/healthz").json == {"status": "ok"}


def test_an_integer_of_more_than_4300_digits_is_400_without_a_traceback(
    offline_client: FlaskClient, caplog: pytest.LogCaptureFixture,
) -> None:
    body = '{"repositories": [{"full_name": "a/b", "forks_count": ' + "9" * 5000 + "}]}"
    answer = offline_client.post("/api/v1/predict", data=body, content_type="application/json")
    assert answer.status_code == 400
    assert answer.json == {"error": "malformed JSON: a number has more than 4300 digits", "details": {}}
    assert not [r for r in caplog.records if r.exc_info], "a refused body must not log a traceback"


def test_deeply_nested_arrays_are_400_without_a_traceback(
    offline_client: FlaskClient, caplog: pytest.LogCaptureFixture,
) -> None:
    depth = 100_000  # 200 kB: well inside the 1 MB body limit
    body = '{"repositories": ' + "[" * depth + "]" * depth + "}"
    answer = offline_client.post("/api/v1/predict", data=body, content_type="application/json")
    assert answer.status_code == 400
    assert answer.json == {"error": "malformed JSON: arrays or objects nested too deeply", "details": {}}
    assert not [r for r in caplog.records if r.exc_info], "a refused body must not log a traceback"


def test_nesting_the_decoder_accepts_is_refused_by_validation(offline_client: FlaskClient) -> None:
    nested = "[" * 900 + "]" * 900
    answer = offline_client.post("/api/v1/predict", data=f'{{"repositories": [{{"topics": {nested}}}]}}',
                                 content_type="application/json")
    assert answer.status_code == 400
    assert answer.json["error"].startswith("invalid input: repositories[0].topics")


@pytest.mark.parametrize("name", ["owner/..", "owner/.", "../..", "owner/../x"])
def test_dot_segments_are_not_repository_names_in_json(offline_client: FlaskClient, name: str) -> None:
    answer = offline_client.post("/api/v1/predict", json={"repositories": [{"full_name": name}]})
    assert answer.status_code == 400
    reason = answer.json["details"]["repositories[0].full_name"]
    if name.count("/") == 1 and not name.startswith("."):
        assert reason == "'.' and '..' are not names: give the repository's owner/name"
    else:  # not owner/name at all (the owner must start with a letter or digit; one slash)
        assert reason == "must look like owner/name (letters, digits, '-', '.', '_')"


def test_names_with_dots_inside_are_still_names(offline_client: FlaskClient) -> None:
    for name in ("owner/...", "owner/.github", "owner/a..b", "owner/.x."):
        answer = offline_client.post("/api/v1/predict", json={"repositories": [{"full_name": name}]})
        assert answer.status_code != 400, (name, answer.json)


@pytest.mark.parametrize("name", ["owner/..", "owner/."])
def test_dot_segments_are_refused_by_the_form_next_to_the_name(
    offline_client: FlaskClient, name: str,
) -> None:
    data = form_data([{"full_name": name}], csrf_token(offline_client))
    answer = offline_client.post("/predict", data=data)
    assert answer.status_code == 400
    page = answer.get_data(as_text=True)
    field = page[page.index('name="rows-0-full_name"'):]
    message = "&#39;.&#39; and &#39;..&#39; are not names: give the repository&#39;s owner/name"
    assert field.index(message) < field.index("</label>")


def test_absurd_numbers_are_refused_with_the_range_not_a_parser_message(offline_client: FlaskClient) -> None:
    body = {"repositories": [{"full_name": "a/b", "size": 1e20, "forks_count": -2.0,
                              "created_at": "2020-01-01"}]}
    answer = offline_client.post("/api/v1/predict", json=body)
    assert answer.status_code == 400
    assert answer.json["details"] == {
        "repositories[0].size": "must be at most 1,000,000,000 (no GitHub repository comes near)",
        "repositories[0].forks_count": "Input should be greater than or equal to 0",
    }


def test_form_rows_left_out_by_a_client_are_empty_not_copies_of_another_row(offline_app: Flask) -> None:
    """A script posting only rows 0 and 2 gets two repositories, named as the form numbers them (WTForms'
    own FieldList turned this into three, row 2 twice)."""
    from model_serving.production_server.forms import PredictForm

    offline_app.config["WTF_CSRF_ENABLED"] = False
    data = {"rows-0-language": "Go", "rows-0-forks_count": "3", "rows-0-created_at": "2024-01-01",
            "rows-2-language": "C", "rows-2-forks_count": "3000", "rows-2-created_at": "2012-01-01"}
    with offline_app.test_request_context("/predict", method="POST", data=data):
        form = PredictForm()
        assert form.validate(), form.errors
        assert [entry.name for entry in form.rows.entries] == [f"rows-{i}" for i in range(5)]
        assert [entry.form.is_empty() for entry in form.rows.entries] == [False, True, False, True, True]
        items = form.items()
        assert items is not None and [item.row["language"] for item in items if item.row] == ["Go", "C"]
