"""The training lab: scored "your turn" exercises for the trainee notebooks.

Each exercise has an id (``"01.transcribe"``), a checker that scores a trainee's answer at once, a hint shown
when the answer is not right yet, and a solution that is shown only when asked for (:func:`solution`).
Transcription answers are scored like paid work: word error rate after the project's normalisation, a
word-by-word alignment, and for each error the rule of the transcription guideline behind it
(``docs/guidelines/transcription.md``).

Example:
    >>> r = check("01.wer_by_hand", 0.5)
    >>> r.passed, r.hint is not None
    (False, True)
    >>> check("01.wer_by_hand", solution("01.wer_by_hand")).passed
    True
    >>> fb = transcript_feedback("We met at twelve.", "um we met at 13", item_id="demo")
    >>> round(fb.score, 2), list(fb.details["op"]), fb.details["rule"][0][:10]
    (0.25, ['substitute'], '§3 Numbers')
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

__all__ = ["CheckResult", "EXERCISES", "Exercise", "check", "check_labelled", "solution", "transcript_feedback"]

_FILLERS = {"uh", "um", "er", "erm", "hmm", "mm", "ah", "eh"}
_NUMBER_WORDS = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                 "eleven", "twelve", "hundred", "thousand", "million", "half", "quarter", "oh"}


@dataclass(repr=False)
class CheckResult:
    """The score of one answer.

    Attributes:
        exercise: The exercise id.
        passed: The answer meets the exercise's bar.
        score: A number for the answer (WER, accuracy...), when the exercise has one.
        message: What the trainee reads first.
        hint: What to look at again (``None`` when passed).
        details: A table (the alignment of a transcript, the answers per question), when there is one.
    """

    exercise: str
    passed: bool
    score: float | None
    message: str
    hint: str | None = None
    details: pd.DataFrame | None = None

    def __str__(self) -> str:
        head = ("✅ Correct: " if self.passed else "❌ Not yet: ") + self.message
        lines = [head] + ([f"Hint: {self.hint}"] if self.hint else [])
        if self.details is not None and len(self.details):
            lines.append(self.details.to_string(index=False))
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        color = "#1b7f3b" if self.passed else "#b3261e"
        mark = "✅ Correct" if self.passed else "❌ Not yet"
        out = [f'<div style="border-left:4px solid {color};padding:4px 10px">'
               f'<b style="color:{color}">{mark}</b>: {html.escape(self.message)}']
        if self.hint:
            out.append(f"<br><i>Hint:</i> {html.escape(self.hint)}")
        if self.details is not None and len(self.details):
            out.append(self.details.to_html(index=False, escape=True))
        out.append("</div>")
        return "".join(out)


@dataclass(frozen=True)
class Exercise:
    """One scored exercise.

    Attributes:
        id: Its id, ``"<notebook>.<name>"``.
        prompt: What the trainee is asked.
        solution: The right answer (what :func:`solution` returns).
        checker: Scores an answer.
    """

    id: str
    prompt: str
    solution: Any
    checker: Callable[[Any, Exercise], CheckResult]


def _align(reference: str, answer: str) -> pd.DataFrame:
    """Word alignment of two normalised texts: one row per reference or answer word."""
    import jiwer

    from kdh_ai.quality import normalize_text

    ref, hyp = normalize_text(reference), normalize_text(answer)
    rows: list[dict[str, str]] = []
    if not ref.split():
        return pd.DataFrame([{"reference": "", "yours": w, "op": "insert"} for w in hyp.split()],
                            columns=["reference", "yours", "op"])
    if not hyp.split():
        return pd.DataFrame([{"reference": w, "yours": "", "op": "delete"} for w in ref.split()],
                            columns=["reference", "yours", "op"])
    out = jiwer.process_words(ref, hyp)
    r_words, h_words = out.references[0], out.hypotheses[0]
    for chunk in out.alignments[0]:
        if chunk.type == "equal":
            rows += [{"reference": w, "yours": w, "op": "ok"} for w in r_words[chunk.ref_start_idx:chunk.ref_end_idx]]
        elif chunk.type == "substitute":
            rows += [{"reference": r, "yours": h, "op": "substitute"} for r, h in
                     zip(r_words[chunk.ref_start_idx:chunk.ref_end_idx], h_words[chunk.hyp_start_idx:chunk.hyp_end_idx])]
        elif chunk.type == "delete":
            rows += [{"reference": r, "yours": "", "op": "delete"} for r in r_words[chunk.ref_start_idx:chunk.ref_end_idx]]
        else:
            rows += [{"reference": "", "yours": h, "op": "insert"} for h in h_words[chunk.hyp_start_idx:chunk.hyp_end_idx]]
    return pd.DataFrame(rows, columns=["reference", "yours", "op"])


def _is_number(word: str) -> bool:
    return bool(re.fullmatch(r"[\d.,:%$£€]+", word)) or word in _NUMBER_WORDS


def _rule(row: pd.Series, prev: str, position: int, n_ref: int, names: set[str]) -> str:
    """The transcription guideline's rule behind one alignment error."""
    ref, yours, op = row["reference"], row["yours"], row["op"]
    if op == "insert" and yours in _FILLERS:
        return "§1 Fillers (uh, um) are left out in clean verbatim."
    if op == "insert" and yours == prev:
        return "§1 Repeated words are written once in clean verbatim."
    if _is_number(ref) or _is_number(yours):
        return "§3 Numbers: words for zero to nine, digits from 10; times, money and years in digits."
    if ref and ref in names:
        return "§2 Names: spell them as the client's material does; unsure? write it as it sounds and add [?]."
    if op == "delete" and position >= n_ref - 2:
        return "§8 Listen to the very end of the clip: the last words are the easiest to miss."
    if op == "delete":
        return "§4 A word you could not make out is [inaudible], never left out silently (it still counts as missing)."
    if op == "insert":
        return "§1 Write only the words that were spoken: listen again where you added this one."
    return "§2 Listen to this word three times; if you still cannot make it out, write [inaudible]."


def transcript_feedback(reference: str, answer: str, *, item_id: str = "", max_wer: float = 0.1,
                        exercise: str = "transcript") -> CheckResult:
    """Score a trainee's transcript like paid work: WER, alignment, and the guideline rule per error.

    Args:
        reference: The reference transcript.
        answer: The trainee's transcript.
        item_id: The clip's id (shown in the message).
        max_wer: The bar to pass (paid transcription work at the hub asks for at most 10% WER on a clip).
        exercise: The exercise id written in the result.

    Returns:
        A :class:`CheckResult` whose ``score`` is the WER and whose ``details`` lists the errors with the
        rule behind each.
    """
    if not isinstance(answer, str):
        raise ValueError(f"the answer for {item_id or 'the clip'} must be text (a str), got {type(answer).__name__}")
    table = _align(reference, answer)
    n_ref = int((table["op"] != "insert").sum())
    errors = int((table["op"] != "ok").sum())
    score = errors / n_ref if n_ref else float(errors)
    names = {w.lower().strip(".,;:!?\"'") for i, w in enumerate(reference.split())
             if i > 0 and w[:1].isupper()}
    rules, prev, ref_pos = [], "", 0
    for _, row in table.iterrows():
        rules.append("" if row["op"] == "ok" else _rule(row, prev, ref_pos, n_ref, names))
        if row["op"] != "insert":
            ref_pos += 1
        prev = row["yours"] or prev
    table["rule"] = rules
    wrong = table[table["op"] != "ok"].reset_index(drop=True)
    who = f"{item_id}: " if item_id else ""
    if not answer.strip():
        return CheckResult(exercise, False, 1.0, f"{who}no transcript yet.", "Play the clip and type what you "
                           "hear between the quotes.", wrong)
    passed = score <= max_wer
    msg = f"{who}WER {score:.0%} ({errors} error{'s' if errors != 1 else ''} in {n_ref} words; paid work needs " \
          f"at most {max_wer:.0%})."
    hint = None if passed else (wrong["rule"].value_counts().index[0] if len(wrong) else None)
    return CheckResult(exercise, passed, score, msg, hint, wrong)


def check_labelled(job_dir: Any, email: str, references: Mapping[str, str], *, min_items: int = 2,
                   max_wer: float = 0.10, url: str | None = None) -> CheckResult:
    """Score what a trainee labelled in Label Studio's browser (notebook 02's "your turn").

    Reads the job's pulled annotations (``kdh pull`` first) of ``email`` on the items whose reference is known,
    and scores them like paid work: WER over all their words (at most ``max_wer`` passes), an alignment per
    clip and the guideline rule behind each error. Fewer than ``min_items`` labelled items: not yet.

    Args:
        job_dir: The pulled job directory.
        email: The trainee's login e-mail.
        references: ``{item_id: reference transcript}`` of the items.
        min_items: Items to label before the check passes.
        max_wer: The bar (paid transcription work at the hub: at most 10%).
        url: Where to label (repeated in the hint).
    """
    from kdh_ai.labelstudio.pull import annotations_frame
    from kdh_ai.quality import normalize_text

    if min_items < 1:
        raise ValueError(f"min_items must be >= 1, got {min_items}")
    frame = annotations_frame(job_dir)
    mine = frame[(frame["worker"].astype(str).str.lower() == email.lower()) & frame["task"].isin(list(references))]
    mine = mine.sort_values("updated_at").drop_duplicates("task", keep="last")
    where = f" at {url}" if url else ""
    if len(mine) < min_items:
        return CheckResult("02.label_in_browser", False, None,
                           f"{len(mine)} of {min_items} tasks labelled by {email} so far.",
                           f"Log in{where} as {email}, open the project, press Label All Tasks, correct the text "
                           f"of at least {min_items} clips and press Submit; then run this cell again.")
    results = [transcript_feedback(references[t], str(a or ""), item_id=str(t)) for t, a in
               zip(mine["task"], mine["label"])]
    errors = sum(len(r.details) if r.details is not None else 0 for r in results)
    n_ref = sum(len(normalize_text(references[t]).split()) for t in mine["task"])
    score = errors / max(n_ref, 1)
    passed = score <= max_wer
    rows = [{"clip": str(t), "WER": f"{r.score:.0%}", "errors": 0 if r.details is None else len(r.details),
             "first rule to re-read": "" if r.details is None or not len(r.details) else r.details["rule"].iloc[0]}
            for t, r in zip(mine["task"], results)]
    hint = None if passed else next((r.hint for r in results if r.hint), "Replay each clip and check every word.")
    return CheckResult("02.label_in_browser", passed, score,
                       f"{len(mine)} clips labelled: WER {score:.0%} ({errors} errors in {n_ref} words; paid work "
                       f"needs at most {max_wer:.0%}).", hint, pd.DataFrame(rows))


# ----------------------------------------------------------------------------------------------------------
# The exercises


def _references() -> dict[str, str]:
    from kdh_ai.samples import ljspeech_manifest

    df = pd.read_csv(ljspeech_manifest())
    return dict(zip(df.item_id, df.reference))


_TRANSCRIBE_CLIPS = ("LJ001-0002", "LJ001-0004", "LJ001-0008")


def _check_transcribe(answer: Any, ex: Exercise) -> CheckResult:
    if not isinstance(answer, Mapping):
        raise ValueError("give a dict {clip id: your transcript}, as in the cell")
    refs = _references()
    missing = [c for c in _TRANSCRIBE_CLIPS if c not in answer]
    if missing:
        raise ValueError(f"transcripts missing for {missing}; keep one entry per clip of the cell")
    results = [transcript_feedback(refs[c], str(answer[c] or ""), item_id=c) for c in _TRANSCRIBE_CLIPS]
    errors = sum(int(len(r.details)) if r.details is not None else 0 for r in results)
    words = sum(len(refs[c].split()) for c in _TRANSCRIBE_CLIPS)
    passed = all(r.passed for r in results)
    details = pd.concat([r.details.assign(clip=r.message.split(":")[0]) for r in results
                         if r.details is not None and len(r.details)], ignore_index=True) \
        if any(r.details is not None and len(r.details) for r in results) else None
    msg = "; ".join(r.message for r in results)
    hint = next((r.hint for r in results if not r.passed and r.hint), None)
    return CheckResult(ex.id, passed, errors / max(words, 1), msg, hint, details)


def _check_number(tolerance: float, hint: str) -> Callable[[Any, Exercise], CheckResult]:
    def checker(answer: Any, ex: Exercise) -> CheckResult:
        try:
            value = float(answer)
        except (TypeError, ValueError):
            return CheckResult(ex.id, False, None, f"{answer!r} is not a number.", "Give a fraction such as 0.25.")
        if abs(value - float(ex.solution)) <= tolerance:
            return CheckResult(ex.id, True, value, f"{value:.3f} is right.")
        return CheckResult(ex.id, False, value, f"{value:.3f} is not the WER of this pair.", hint)
    return checker


def _check_written(answer: Any, ex: Exercise) -> CheckResult:
    """Exact-form exercises of the guideline: compared after trimming spaces, case-sensitive for tags."""
    if not isinstance(answer, Mapping):
        raise ValueError("give a dict {question number: your text}, as in the cell")
    rows, right = [], 0
    for key, (said, expected, rule) in ex.solution["questions"].items():
        yours = str(answer.get(key, "") or "").strip()
        ok = " ".join(yours.split()).rstrip(".") == expected.rstrip(".")
        right += ok
        rows.append({"question": key, "you hear": said, "yours": yours, "ok": "yes" if ok else "no",
                     "rule": "" if ok else rule})
    table = pd.DataFrame(rows)
    n = len(rows)
    passed = right == n
    wrong = table[table["ok"] == "no"]
    hint = None if passed else wrong["rule"].iloc[0]
    return CheckResult(ex.id, passed, right / n, f"{right} of {n} written as the guideline asks.", hint,
                       table if not passed else None)


def _written_solution(ex_solution: dict[str, Any]) -> dict[str, str]:
    return {k: v[1] for k, v in ex_solution["questions"].items()}


_GUIDE_QUESTIONS = {
    "1": ("um I I want uh twelve of them", "I want 12 of them", "§1 and §3: no fillers or repeats; 12 in digits."),
    "2": ("we meet at half past seven", "we meet at 7:30", "§3: times are always digits."),
    "3": ("she has three brothers", "she has three brothers", "§3: zero to nine are words."),
    "4": ("we met at (a word you cannot make out) station", "we met at [inaudible] station",
          "§4: a word you cannot make out is [inaudible], lower case, in square brackets."),
}

_CLASSIFY_QUESTIONS = {
    "1": ("WINNER!! You have been selected to receive a £900 prize. Call 09061701461", "spam",
          "An unsolicited offer from an unknown sender that asks you to call a premium number is spam."),
    "2": ("Are you free tonight? I'll buy the pizza", "ham",
          "'free' alone does not make spam: label by what the text is for, not by keywords (section 2)."),
    "3": ("Your bank: your card ending 1234 is blocked, click http://bit.ly/x to unlock", "spam",
          "Phishing (act on a link from an unverified sender) is spam."),
    "4": ("Reminder: your dentist appointment is tomorrow at 10:30", "ham",
          "A service message you expect is not an unsolicited offer: ham."),
    "5": ("Hey it's me, new number, text me back for a free ringtone", "spam",
          "The offer decides, not the friendly tone (worked examples)."),
}


# the lead track (notebook 07): reading `kdh status`, the feedback page and the client report; answers are letters
_LEAD_STATUS = {
    "1": ("'annotations done / needed 18 / 24 (6 to go)', Next: wait for 6 more answers, then pull", "b",
          "Deliver only when status's Next says deliver: missing answers leave items for people undone (and the "
          "report a draft)."),
    "2": ("'Kept apart, not delivered: 4 answers from ... not qualified for transcription: sam@...'", "c",
          "Answers of unqualified annotators never reach the client; qualify the person (kdh qualify ... then "
          "--score) and the next pull takes them in. Turning the check off on paid work defeats it."),
    "3": ("'hours' 3.10 but 'capped 30m' 1.20 for one annotator", "a",
          "lead_time counts the seconds a task was open; the capped column stops a tab left open over lunch "
          "from counting as work. Pay from what the hub agreed, and ask about the long ones."),
}
_LEAD_FEEDBACK = {
    "1": ("'Only 3 gold answers so far: too few to judge'", "b",
          "Three gold answers give an interval far too wide to judge a person: wait for more gold."),
    "2": ("WER 14% on gold; paid transcription work asks for at most 10%", "a",
          "Above the bar: the page's 'What to try next' names the lessons; then a new qualification test."),
    "3": ("'2.5x' your time per item against the team median", "b",
          "The ratio is the trainee's median time per item over the team's: 2.5x is slower, not faster."),
}
_LEAD_REPORT = {
    "1": ("Delivered WER estimate 6%, 95% interval 3%-9%, client target 10%", "a",
          "The target is met when the whole interval, its upper end included, is within it."),
    "2": ("Whose answers does the client report count?", "b",
          "Only pulled, delivered answers: kept-apart answers of unqualified annotators are not in it, and "
          "simulated accounts are marked SIMULATED."),
    "3": ("'Guideline: the annotators worked to transcription guideline v1.0.0'", "a",
          "The version tells the client which rules (numbers, tags, casing) the transcripts follow."),
}

# notebook 08: long recordings, segments and subtitles (answers are letters)
_SUBTITLES = {
    "1": ("A cue is on screen for 0.6 s", "c",
          "Subtitle guidelines ask 1 to 7 s per cue: under 1 s a viewer cannot read it (kdh stretches a short cue "
          "into the silence next to it)."),
    "2": ("One segment at confidence 0.52, every other one above 0.9", "a",
          "Only the uncertain segment goes to people, heard with a few seconds of context around it: nobody "
          "re-listens to the whole hour, and the file's average confidence hides the doubtful stretch."),
    "3": ("A line of a cue has 50 characters", "b",
          "At most 42 characters per line and 2 lines per cue: the text is broken into two lines, or two cues."),
    "4": ("People corrected two words of segment 7", "c",
          "The segment's bounds stay; words people kept keep the model's times, and new words share the time "
          "between them (marked estimated)."),
}


def _check_choices(answer: Any, ex: Exercise) -> CheckResult:
    """Label-choice exercises: each answer compared with the guideline's label."""
    if not isinstance(answer, Mapping):
        raise ValueError("give a dict {question number: your label}, as in the cell")
    rows, right = [], 0
    for key, (text, expected, rule) in ex.solution["questions"].items():
        yours = str(answer.get(key, "") or "").strip().lower()
        ok = yours == expected
        right += ok
        rows.append({"question": key, "text": text[:60], "yours": yours or "(none)", "ok": "yes" if ok else "no",
                     "rule": "" if ok else rule})
    table = pd.DataFrame(rows)
    passed = right == len(rows)
    hint = None if passed else table[table["ok"] == "no"]["rule"].iloc[0]
    said = "right." if ex.id.startswith(("lead.", "08.")) else "labelled as the guideline says."
    return CheckResult(ex.id, passed, right / len(rows), f"{right} of {len(rows)} {said}",
                       hint, None if passed else table)


EXERCISES: dict[str, Exercise] = {
    ex.id: ex for ex in (
        Exercise("01.wer_by_hand",
                 'Reference "the cat sat on the mat", your transcript "the cat sat on mat". What is the WER?',
                 1 / 6, _check_number(0.005, "Count the reference words (6) and the errors: one word is "
                                              "missing (a deletion). WER = errors / reference words.")),
        Exercise("01.transcribe",
                 "Transcribe clips " + ", ".join(_TRANSCRIBE_CLIPS) + " by ear, following the transcription "
                 "guideline.", None, _check_transcribe),
        Exercise("guide.write", "Write each sentence as the transcription guideline asks.",
                 {"questions": _GUIDE_QUESTIONS}, _check_written),
        Exercise("guide.classify", "Label each SMS ham or spam as the classification guideline asks.",
                 {"questions": _CLASSIFY_QUESTIONS}, _check_choices),
        Exercise("lead.status", "Read `kdh status`: which letter is right for each line?",
                 {"questions": _LEAD_STATUS}, _check_choices),
        Exercise("lead.feedback", "Read a trainee's feedback page: which letter is right?",
                 {"questions": _LEAD_FEEDBACK}, _check_choices),
        Exercise("lead.report", "Read the client report: which letter is right?",
                 {"questions": _LEAD_REPORT}, _check_choices),
        Exercise("08.subtitles", "Segments and subtitles: which letter is right?",
                 {"questions": _SUBTITLES}, _check_choices),
    )
}
"""Every exercise of the notebooks, by id."""


def check(exercise_id: str, answer: Any) -> CheckResult:
    """Score an answer to an exercise at once.

    Raises:
        ValueError: Unknown exercise (the message lists the valid ids), or an answer of the wrong form.
    """
    ex = EXERCISES.get(exercise_id)
    if ex is None:
        raise ValueError(f"unknown exercise {exercise_id!r}; valid: {sorted(EXERCISES)}")
    return ex.checker(answer, ex)


def solution(exercise_id: str) -> Any:
    """The solution of an exercise, in the form :func:`check` takes (shown only when a trainee asks)."""
    ex = EXERCISES.get(exercise_id)
    if ex is None:
        raise ValueError(f"unknown exercise {exercise_id!r}; valid: {sorted(EXERCISES)}")
    if exercise_id == "01.transcribe":
        refs = _references()
        return {c: refs[c] for c in _TRANSCRIBE_CLIPS}
    if isinstance(ex.solution, dict) and "questions" in ex.solution:
        return _written_solution(ex.solution)
    return ex.solution
