"""The checklist on the web over HTTP (httpx against the app as the daemon builds it): the
form on the call page, submit, correction, acknowledge, dispute and its resolution, the
sampling page, the recording; every role against every new route, CSRF, strangers' text."""

from __future__ import annotations

import html
import re
import wave
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import httpx
import markupsafe
import pytest

from call_monitor.charter.judged import JudgedCall
from call_monitor.checklist.files import load_form
from call_monitor.checklist.sampling import month_of
from call_monitor.config import DepartmentEntry, StaffEntry, WebSettings, default_directory
from call_monitor.store.accounts import audit_entries
from call_monitor.timefmt import SEOUL
from call_monitor.web.recording import Recordings
from tests.test_web_site import ORIGIN, ROLES, session_for
from tests.web_site import CHONGMU, HOSTILE_CALLER, MINWON, WebSite, csrf_of, web_site

FORM = load_form(None)
# A listener's answers to the items no PBX measures; the measured ones keep the PBX's.
HEARD = {
    "p1_greeting": "yes",
    "p2_apology": "yes",
    "p3_repeat": "yes",
    "p3_explain": "yes",
    "p7_anything_else": "yes",
    "p7_closing": "no",
}


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[WebSite]:
    async with web_site(tmp_path / "web.sqlite3") as found:
        yield found


def late_call(site: WebSite) -> str:
    """c_answer_3rings_breach: answered on ring 3 by 201 (민원여권과)."""
    judged = site.calls[1]
    assert judged.verdict.apology_expected is True
    return judged.record.linkedid


def started(judged: JudgedCall) -> datetime:
    return datetime.fromtimestamp(judged.record.started_at, SEOUL)


def answers(heard: dict[str, str], **extra: str) -> dict[str, str]:
    return {f"answer-{item}": answer for item, answer in heard.items()} | extra


async def post(
    client: httpx.AsyncClient, path: str, data: dict[str, str], csrf: bool = True
) -> httpx.Response:
    """A form posted as the browser does: the page's CSRF token, the same Origin."""
    token = csrf_of((await client.get("/callbacks")).text) if csrf else None
    fields = data | ({"csrftoken": token} if token else {})
    return await client.post(path, data=fields, headers={"Origin": ORIGIN})


async def score(
    site: WebSite, linkedid: str, login: str = "sup-minwon", **extra: str
) -> httpx.Response:
    """The listener's answers to the items the call page asks (all of them if refused)."""
    async with session_for(site, login) as client:
        page = (await client.get(f"/calls/{linkedid}")).text
        asked = {k: v for k, v in HEARD.items() if f'id="item-{k}"' in page} or HEARD
        return await post(client, f"/calls/{linkedid}/checklist", answers(asked, **extra))


def expected_score(given: dict[str, str]) -> float:
    """Weighted yes over the items answered yes or no, from the form's own weights."""
    weights = {item.id: item.weight for item in FORM.items}
    counted = {item: weights[item] for item, answer in given.items() if answer != "na"}
    yes = sum(weights[item] for item, answer in given.items() if answer == "yes")
    return round(100 * yes / sum(counted.values()), 2)


async def actions(site: WebSite) -> list[tuple[str, str | None, str | None]]:
    rows = await audit_entries(site.site.engine, 200)
    return [(r["action"], r["actor"], r["target"]) for r in rows if "checklist" in r["action"]]


# --------------------------------------------------------------------------- the form


async def test_the_form_asks_what_applies_and_prefills_what_was_measured(site: WebSite) -> None:
    async with session_for(site, "sup-minwon") as client:
        late = (await client.get(f"/calls/{late_call(site)}")).text
        prompt = (await client.get(f"/calls/{site.calls[0].record.linkedid}")).text
    for stage in FORM.stages:
        assert f"<legend>{stage.ko}</legend>" in late
    assert 'id="item-p2_apology"' in late  # ring 3: the apology is asked
    assert 'id="item-p2_apology"' not in prompt  # ring 1: it is not
    assert 'id="item-p4_briefing"' not in late  # no transfer
    # Measured and pre-filled: P1 rings (breached: no) and P7 (the caller hung up first: yes).
    assert re.search(r'name="answer-p1_rings" value="no" checked', late)
    assert re.search(r'name="answer-p7_caller_hangs_up" value="yes" checked', late)
    assert 'class="item measured" id="item-p1_rings"' in late
    assert "교환기 측정: 아니오" in late
    assert not re.search(r'name="answer-p3_explain" value="\w+" checked', late)


async def test_the_form_in_english(site: WebSite) -> None:
    async with session_for(site, "sup-minwon") as client:
        page = (await client.get(f"/calls/{late_call(site)}", params={"lang": "en"})).text
    assert "<legend>Greeting</legend>" in page
    assert FORM.item("p2_apology").en in page
    assert FORM.item("p2_apology").ko not in page
    assert "measured by the PBX: No" in page


async def test_a_submit_scores_counts_and_is_audited(site: WebSite) -> None:
    linkedid = late_call(site)
    answer = await score(site, linkedid)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == f"/calls/{linkedid}?done=submitted#checklist"
    given = HEARD | {"p1_rings": "no", "p7_caller_hangs_up": "yes"}
    async with session_for(site, "sup-minwon") as client:
        page = (await client.get(answer.headers["location"])).text
        metrics = (await client.get("/metrics")).text
    assert f"<strong>{expected_score(given):g}</strong>" in page
    assert "점검표를 저장했습니다." in page
    assert 'id="revisions"' in page
    assert ("checklist_submit", "sup-minwon", linkedid) in await actions(site)
    # Through ChecklistService: its on_submitted fed the metrics.
    answered = (
        'callmon_checklist_answers_total{answer="yes",department="민원여권과",item="p2_apology"}'
    )
    assert f"{answered} 1.0" in metrics.splitlines()
    assert 'callmon_checklist_score_ratio_count{department="민원여권과"} 1.0' in metrics


async def test_a_measured_item_is_overridden_only_with_a_comment(site: WebSite) -> None:
    linkedid = late_call(site)
    refused = await score(site, linkedid, **{"answer-p1_rings": "yes"})
    assert refused.status_code == 422
    assert "p1_rings: measured" in html.unescape(refused.text)
    assert re.search(r'name="answer-p1_rings" value="yes" checked', refused.text)  # kept
    assert await actions(site) == []
    overridden = await score(
        site, linkedid, **{"answer-p1_rings": "yes", "comment-p1_rings": "벨 소리 설정 오류"}
    )
    assert overridden.status_code == 303
    async with session_for(site, "sup-minwon") as client:
        page = (await client.get(f"/calls/{linkedid}")).text
    assert "측정값 변경" in page
    assert "벨 소리 설정 오류" in page


async def test_a_correction_is_a_new_revision_with_a_reason(site: WebSite) -> None:
    linkedid = late_call(site)
    assert (await score(site, linkedid)).status_code == 303
    no_reason = await score(site, linkedid)
    assert no_reason.status_code == 409
    assert "a correction needs a reason" in no_reason.text
    corrected = await score(
        site, linkedid, **{"answer-p7_closing": "yes", "reason": "다시 들어 보니 인사함"}
    )
    assert corrected.status_code == 303
    async with session_for(site, "auditor") as client:
        page = (await client.get(f"/calls/{linkedid}")).text
    revisions = page.split('id="revisions"')[1].split("</table>")[0]
    assert revisions.count("<tr><td>") == 2
    assert "다시 들어 보니 인사함" in revisions
    assert 'id="checklist-form"' not in page  # an auditor changes nothing
    assert ("checklist_revision", "sup-minwon", linkedid) in await actions(site)


# ----------------------------------------------------------------------- roles and CSRF

# Who may score a call of 민원여권과 answered by 201.
SCORERS = {"admin", "sup-minwon"}
# On that call, scored once by sup-minwon: what each login gets, in this order, for
# acknowledge, dispute (after that acknowledgement), uphold (no dispute open), a correction.
WRITES: dict[str, tuple[int, int, int, int]] = {
    "admin": (403, 403, 404, 303),
    "auditor": (403, 403, 403, 403),
    "sup-minwon": (403, 403, 404, 303),
    "sup-chongmu": (403, 403, 403, 403),  # another department's: not even the page
    "staff-201": (303, 409, 403, 403),
    "staff-203": (403, 403, 403, 403),
}


@pytest.mark.parametrize("login", ROLES)
async def test_every_role_against_the_checklist_routes(site: WebSite, login: str) -> None:
    linkedid = late_call(site)
    assert (await score(site, linkedid)).status_code == 303
    path = f"/calls/{linkedid}/checklist"
    async with session_for(site, login) as client:
        page = await client.get(f"/calls/{linkedid}")
        assert page.status_code == (403 if login in ("staff-203", "sup-chongmu") else 200)
        assert ('id="checklist-form"' in page.text) == (login in SCORERS)
        sampling = await client.get("/checklists")
        assert sampling.status_code == (403 if login.startswith("staff") else 200)
        got = (
            (await post(client, f"{path}/1/acknowledge", {})).status_code,
            (
                await post(client, f"{path}/1/dispute", {"item_id": "p3_repeat", "comment": "x"})
            ).status_code,
            (await post(client, f"{path}/1/uphold", {"comment": "유지"})).status_code,
        )
    correction = await score(site, linkedid, login, reason="채점")
    assert (*got, correction.status_code) == WRITES[login]
    audited = {action for action, actor, _ in await actions(site) if actor == login}
    expected = {"checklist_revision"} if login in SCORERS else set()
    expected |= {"checklist_submit"} if login == "sup-minwon" else set()  # revision 1
    expected |= {"checklist_acknowledge"} if login == "staff-201" else set()
    assert audited == expected


@pytest.mark.parametrize(
    "path",
    [
        "/calls/{id}/checklist",
        "/calls/{id}/checklist/1/acknowledge",
        "/calls/{id}/checklist/1/dispute",
        "/calls/{id}/checklist/1/uphold",
    ],
)
async def test_checklist_writes_without_a_csrf_token_are_refused(site: WebSite, path: str) -> None:
    linkedid = late_call(site)
    login = "sup-minwon" if path.endswith(("checklist", "uphold")) else "staff-201"
    async with session_for(site, login) as client:
        data = answers(HEARD) | {"item_id": "p3_repeat", "comment": "c"}
        answer = await post(client, path.format(id=linkedid), data, csrf=False)
    assert answer.status_code == 403
    assert "CSRF" in answer.text
    assert await actions(site) == []


# ------------------------------------------------------------------ staff and disputes


async def test_staff_acknowledge_their_score_once(site: WebSite) -> None:
    linkedid = late_call(site)
    assert (await score(site, linkedid)).status_code == 303
    async with session_for(site, "staff-201") as client:
        home = (await client.get("/me")).text
        given = HEARD | {"p1_rings": "no", "p7_caller_hangs_up": "yes"}
        assert f'id="mean-score">{expected_score(given):g} (1)' in home
        assert f'href="/calls/{linkedid}#checklist"' in home
        page = (await client.get(f"/calls/{linkedid}")).text
        assert 'id="acknowledge-form"' in page
        assert 'id="checklist-form"' not in page
        path = f"/calls/{linkedid}/checklist/1"
        assert (await post(client, f"{path}/acknowledge", {})).status_code == 303
        again = await post(client, f"{path}/acknowledge", {})
        assert again.status_code == 409
        late_dispute = await post(client, f"{path}/dispute", {"item_id": "p3_repeat"})
        assert late_dispute.status_code == 409
        assert 'id="acknowledge-form"' not in (await client.get(f"/calls/{linkedid}")).text
    assert ("checklist_acknowledge", "staff-201", linkedid) in await actions(site)


async def test_a_dispute_goes_to_the_departments_supervisors_who_uphold_it(
    site: WebSite,
) -> None:
    linkedid = late_call(site)
    assert (await score(site, linkedid)).status_code == 303
    path = f"/calls/{linkedid}/checklist/1"
    async with session_for(site, "staff-201") as client:
        no_comment = await post(client, f"{path}/dispute", {"item_id": "p7_closing"})
        assert no_comment.status_code == 409
        disputed = await post(
            client, f"{path}/dispute", {"item_id": "p7_closing", "comment": HOSTILE_CALLER}
        )
        assert disputed.status_code == 303
    month = month_of(started(site.calls[1]))
    async with session_for(site, "sup-chongmu") as client:
        other = (await client.get("/checklists")).text
        assert 'id="no-disputes"' in other
        refused = await post(client, f"{path}/uphold", {"comment": "유지"})
        assert refused.status_code == 403
    async with session_for(site, "sup-minwon") as client:
        queue = (await client.get("/checklists", params={"month": month})).text
        assert f'href="/calls/{linkedid}#checklist"' in queue
        assert "<script>alert(2)" not in queue
        assert str(markupsafe.escape(HOSTILE_CALLER.split("\n")[0])) in queue
        page = (await client.get(f"/calls/{linkedid}")).text
        assert 'id="uphold-form"' in page
        assert (
            await post(client, f"{path}/uphold", {"comment": "녹음상 인사 없음"})
        ).status_code == 303
        again = await post(client, f"{path}/uphold", {"comment": "두 번"})
        assert again.status_code == 409
        assert 'id="no-disputes"' in (await client.get("/checklists")).text
        page = (await client.get(f"/calls/{linkedid}")).text
        assert "기각" in page
        assert "녹음상 인사 없음" in page
    audited = await actions(site)
    assert ("checklist_dispute", "staff-201", linkedid) in audited
    assert ("checklist_uphold", "sup-minwon", linkedid) in audited


async def test_a_dispute_resolved_by_a_new_revision(site: WebSite) -> None:
    linkedid = late_call(site)
    assert (await score(site, linkedid)).status_code == 303
    async with session_for(site, "staff-201") as client:
        disputed = await post(
            client,
            f"/calls/{linkedid}/checklist/1/dispute",
            {"item_id": "p7_closing", "comment": "인사했습니다"},
        )
        assert disputed.status_code == 303
    revised = await score(
        site,
        linkedid,
        **{"answer-p7_closing": "yes", "reason": "확인 결과 인사함", "resolves": "1"},
    )
    assert revised.status_code == 303
    async with session_for(site, "staff-201") as client:
        page = (await client.get(f"/calls/{linkedid}")).text
        assert "정정으로 처리" in page
        assert 'id="acknowledge-form"' in page  # revision 2 is theirs to answer
        home = (await client.get("/me")).text
    given = HEARD | {"p7_closing": "yes", "p1_rings": "no", "p7_caller_hangs_up": "yes"}
    assert f'id="mean-score">{expected_score(given):g} (1)' in home


# ----------------------------------------------------------------------------- sampling


async def test_the_sampling_page_shows_progress_and_the_next_call(site: WebSite) -> None:
    month = month_of(started(site.calls[1]))
    service = site.site.checklists
    assert service is not None
    pick = await service.next_to_score("201", month)
    assert pick.linkedid is not None
    async with session_for(site, "sup-minwon") as client:
        page = (await client.get("/checklists", params={"month": month})).text
    assert f'data-department="{MINWON}"' in page
    assert f'data-department="{CHONGMU}"' not in page
    row = page.split('id="progress-201"')[1].split("</tr>")[0]
    assert f"0 / {service.monthly_target}" in row
    assert f'href="/calls/{pick.linkedid}#checklist"' in row
    assert (await score(site, pick.linkedid, reason="표본")).status_code == 303
    async with session_for(site, "sup-minwon") as client:
        other = await client.get("/checklists", params={"department": CHONGMU})
        assert other.status_code == 403
    async with session_for(site, "auditor") as client:
        chongmu = (await client.get("/checklists", params={"department": CHONGMU})).text
        assert f'data-department="{CHONGMU}"' in chongmu
        assert 'id="progress-203"' in chongmu
        params = {"month": month, "department": MINWON}
        page = (await client.get("/checklists", params=params)).text
        bad = await client.get("/checklists", params={"month": "2026-13"})
        assert bad.status_code == 422
    row = page.split('id="progress-201"')[1].split("</tr>")[0]
    assert f"1 / {service.monthly_target}" in row
    assert f'href="/calls/{pick.linkedid}#checklist"' not in row


# ------------------------------------------------------------------------- hostile text


async def test_a_hostile_caller_name_is_text_on_the_checklist_page(site: WebSite) -> None:
    linkedid = site.calls[-1].record.linkedid
    assert site.calls[-1].record.caller_name == HOSTILE_CALLER
    assert (await score(site, linkedid, reason="x")).status_code == 303
    async with session_for(site, "sup-minwon") as client:
        page = (await client.get(f"/calls/{linkedid}")).text
    assert 'id="score"' in page
    assert "<script>alert(2)" not in page
    assert "<img src=x" not in page
    assert str(markupsafe.escape(HOSTILE_CALLER.split("\n")[0])) in page


# --------------------------------------------------------------- P5: the direct number


async def test_the_direct_number_item_shows_the_other_departments_number(
    tmp_path: Path,
) -> None:
    directory = default_directory()
    # 202 moved to 총무과: e_blind_transfer (201 -> 202) crosses departments.
    directory.staff["202"] = StaffEntry(name="Lee Staff", department=CHONGMU)
    directory.departments[CHONGMU] = DepartmentEntry(direct_number="02-450-7777")
    async with web_site(
        tmp_path / "p5.sqlite3",
        scenarios=("e_blind_transfer.ami", "a_answer_1ring.ami"),
        directory_settings=directory,
    ) as site:
        transferred, plain = (j.record.linkedid for j in site.calls)
        async with session_for(site, "sup-minwon") as client:
            page = (await client.get(f"/calls/{transferred}")).text
            other = (await client.get(f"/calls/{plain}")).text
    item = page.split('id="item-p5_direct_number"')[1].split("</div>")[0]
    assert f"{CHONGMU} 직통번호 <strong>02-450-7777</strong>" in item
    assert 'id="item-p5_direct_number"' not in other


# ---------------------------------------------------------------------------- recording


def make_wav(path: Path, seconds: float = 0.5) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(bytes(range(256)) * int(8000 * 2 * seconds / 256))
    return path.read_bytes()


async def test_the_recording_plays_with_ranges_for_those_who_see_the_call(
    tmp_path: Path,
) -> None:
    template = str(tmp_path / "monitor" / "{date:%Y/%m/%d}" / "{uniqueid}-{extension}.wav")
    web = WebSettings(recording_template=template)
    async with web_site(tmp_path / "rec.sqlite3", web=web) as site:
        judged = site.calls[1]
        linkedid = judged.record.linkedid
        day = started(judged).strftime("%Y/%m/%d")
        wav = make_wav(tmp_path / "monitor" / day / f"{linkedid}-201.wav")
        path = f"/calls/{linkedid}/recording"
        async with session_for(site, "sup-minwon") as client:
            page = (await client.get(f"/calls/{linkedid}")).text
            assert f'<audio controls preload="none" src="{path}">' in page
            whole = await client.get(path)
            assert whole.status_code == 200
            assert whole.content == wav
            assert whole.headers["content-type"] == "audio/x-wav"
            assert whole.headers["accept-ranges"] == "bytes"
            part = await client.get(path, headers={"Range": "bytes=44-143"})
            assert part.status_code == 206
            assert part.content == wav[44:144]
            assert part.headers["content-range"] == f"bytes 44-143/{len(wav)}"
            # Another call of the site has no file: the page says so, the route is 404.
            other = site.calls[0].record.linkedid
            assert 'id="no-recording"' in (await client.get(f"/calls/{other}")).text
            assert (await client.get(f"/calls/{other}/recording")).status_code == 404
        async with session_for(site, "staff-203") as client:
            assert (await client.get(path)).status_code == 403
        async with session_for(site, "staff-201") as client:
            assert (await client.get(path)).content == wav


async def test_a_url_template_goes_to_the_browser_and_the_csp_allows_it(tmp_path: Path) -> None:
    web = WebSettings(
        recording_template="https://rec.office.example/m/{date:%Y%m%d}/{linkedid}.wav"
    )
    async with web_site(tmp_path / "url.sqlite3", web=web) as site:
        judged = site.calls[1]
        linkedid = judged.record.linkedid
        url = f"https://rec.office.example/m/{started(judged):%Y%m%d}/{linkedid}.wav"
        async with session_for(site, "sup-minwon") as client:
            page = await client.get(f"/calls/{linkedid}")
            # Not the app's to serve: the server behind the URL decides who may fetch it.
            assert (await client.get(f"/calls/{linkedid}/recording")).status_code == 404
        assert f'<audio controls preload="none" src="{url}">' in page.text
        policy = page.headers["content-security-policy"]
        assert "media-src 'self' https://rec.office.example" in policy
        assert "script-src 'self'" in policy


@pytest.mark.parametrize("linkedid", ["../etc/passwd", "a/b", ".hidden", "x\\y"])
def test_a_recording_field_that_would_leave_its_directory_finds_nothing(
    tmp_path: Path, linkedid: str
) -> None:
    # Each name reaches a real file: only the check of the field's value keeps it out.
    for name in ("etc/passwd", "monitor/a/b", "monitor/.hidden", "monitor/x\\y", "monitor/ok"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("secret")
    recordings = Recordings(str(tmp_path / "monitor" / "{linkedid}"))
    call = {
        "linkedid": linkedid,
        "started_at": datetime(2026, 11, 28, tzinfo=SEOUL),
        "answered_by": "201",
        "department": MINWON,
    }
    assert recordings.find(call) is None
    found = recordings.find(call | {"linkedid": "ok"})
    assert found is not None
    assert found.path == tmp_path / "monitor" / "ok"
    assert recordings.find(call | {"linkedid": "a"}) is None  # a directory is no recording


async def test_the_admin_page_shows_the_checklist_form_in_force(site: WebSite) -> None:
    async with session_for(site, "admin") as client:
        page = (await client.get("/admin")).text
    assert f"사용 중인 점검표 양식: {FORM.id} {FORM.version}" in page
    rows = page.split('id="checklist-form-items"')[1].split("</table>")[0]
    assert rows.count("<tr><td>") == len(FORM.items)
    assert FORM.item("p2_apology").ko in rows


async def test_the_calls_list_by_scored_or_not(site: WebSite) -> None:
    linkedid = late_call(site)
    assert (await score(site, linkedid)).status_code == 303
    period = {"from": "2026-11-01", "to": "2026-12-31"}
    async with session_for(site, "sup-minwon") as client:
        scored = (await client.get("/calls", params=period | {"scored": "yes"})).text
        unscored = (await client.get("/calls", params=period | {"scored": "no"})).text
        bad = await client.get("/calls", params=period | {"scored": "maybe"})
    assert "통화 1 ·" in scored
    assert f'href="/calls/{linkedid}"' in scored
    assert f"통화 {len(site.calls) - 1} ·" in unscored
    assert f'href="/calls/{linkedid}"' not in unscored
    assert '<option value="yes" selected>' in scored
    assert bad.status_code == 422
