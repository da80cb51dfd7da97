"""MapReduce's pure parts: jobs, partitioning, splits, task execution, and the coordinator's rules.

The scheduler tests read like the paper (Dean & Ghemawat, OSDI 2004, §3):
each names the sentence it checks. No network, no clock: time is passed in.
"""

from __future__ import annotations

import random

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from systems.mapreduce.execute import JobFailure, merge_runs, run_map, run_reduce, sequential
from systems.mapreduce.jobs import Job, JobError, lines, load_job
from systems.mapreduce.partition import hash_partition, partitioner, range_partition, sample_boundaries
from systems.mapreduce.splits import Split, line_tail, needs_tail, owned_text, plan_splits
from systems.mapreduce.tasks import JobSpec, JobState, Kind, Outcome, Rules, Scheduler, TaskState, Verdict

# -- jobs -----------------------------------------------------------------------------------------


def test_builtin_jobs_load_and_unknown_names_are_one_clear_error():
    for name in ("wordcount", "indexer", "sort"):
        assert load_job(name).name == name
    assert load_job("grep", {"pattern": "ab+"}).name == "grep"
    assert load_job("sort").partitioner == "range"
    with pytest.raises(JobError, match="cannot import"):
        load_job("no.such.module")
    with pytest.raises(JobError, match="not a built-in job"):
        load_job("../etc/passwd")
    with pytest.raises(JobError, match="bad parameters"):
        load_job("grep", {})
    with pytest.raises(JobError, match="not a regular expression"):
        load_job("grep", {"pattern": "("})
    with pytest.raises(JobError, match="takes no parameters"):
        load_job("wordcount", {"x": 1})
    with pytest.raises(JobError, match="must define map"):
        load_job("systems.mapreduce.partition")


def run_job(job: Job, files: dict[str, str], r: int, boundaries: tuple[str, ...] = ()) -> str:
    part = partitioner(job.partitioner, r, boundaries)
    return b"".join(sequential(job, sorted(files.items()), part, r)).decode()


def test_wordcount_counts_whitespace_separated_words():
    out = run_job(load_job("wordcount"), {"/a": "x y x\nz\n", "/b": "y x"}, 3)
    assert sorted(out.splitlines()) == ["x 3", "y 2", "z 1"]


def test_indexer_lists_each_word_s_files_once_sorted():
    out = run_job(load_job("indexer"), {"/a": "x y x\n", "/b": "x", "/c": "y\n"}, 2)
    assert sorted(out.splitlines()) == ["x 2 /a,/b", "y 2 /a,/c"]


def test_grep_outputs_every_matching_line_with_its_file():
    out = run_job(load_job("grep", {"pattern": "^b"}), {"/a": "ab\nbc\nbc\n", "/b": "bc\nzz\n"}, 2)
    assert sorted(out.splitlines()) == ["/a:bc", "/a:bc", "/b:bc"]


def test_sort_partitions_concatenate_in_order():
    rng = random.Random(3)
    text = "".join(f"{rng.choice('abcdefgh')}{rng.randrange(1000):03d}\n" for _ in range(500))
    job = load_job("sort")
    bounds = tuple(sample_boundaries(lines(text)[::7], 4))
    out = run_job(job, {"/a": text[:2000], "/b": text[2000:]}, 4, bounds)
    assert out.splitlines() == sorted(text.splitlines())


def test_lines_split_on_newline_only():
    assert lines("a\rb\nc\n") == ["a\rb", "c"]
    assert lines("a\nb") == ["a", "b"]
    assert lines("") == []


# -- partitioning ---------------------------------------------------------------------------------


def test_hash_partition_is_crc32_mod_r_and_never_python_hash():
    import zlib

    assert hash_partition("hello", 7) == zlib.crc32(b"hello") % 7
    assert hash_partition("hello", 7) == 0x3610A686 % 7  # the same on every machine and run
    assert partitioner("hash", 1)("anything") == 0


def test_range_partitions_hold_keys_between_boundaries():
    bounds = ["g", "p"]
    assert [range_partition(k, bounds) for k in ("a", "g", "h", "p", "z")] == [0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="ascending"):
        partitioner("range", 3, ("p", "g"))
    with pytest.raises(ValueError, match="at most 1"):
        partitioner("range", 2, ("a", "b"))


def test_sample_boundaries_are_quantiles_and_distinct():
    assert sample_boundaries([str(i) for i in range(10, 50)], 4) == ["20", "30", "40"]
    assert sample_boundaries(["a"] * 10, 4) == ["a"]
    assert sample_boundaries([], 4) == []
    assert sample_boundaries(["b", "a"], 1) == []


# -- splits ---------------------------------------------------------------------------------------


def split_texts(data: bytes, chunk: int) -> list[str]:
    """Every split's owned text, reading tails from the following bytes as a worker does."""
    out = []
    for off in range(0, len(data), chunk):
        body = data[off : off + chunk]
        prev = data[off - 1 : off] if off else b""
        tail = b""
        if needs_tail(prev, body, off + len(body), len(data)):
            pos = off + len(body)
            while True:
                piece, done = line_tail(data[pos : pos + 3])
                tail += piece
                pos += 3
                if done or pos >= len(data):
                    break
        out.append(owned_text(prev, body, tail))
    return out


@given(st.lists(st.text("ab ", max_size=12), max_size=30), st.booleans(), st.integers(1, 40))
@settings(max_examples=300, deadline=None)
def test_every_line_belongs_to_exactly_one_split(words, final_newline, chunk):
    data = "\n".join(words).encode()
    if final_newline and data:
        data += b"\n"
    texts = split_texts(data, chunk)
    assert "".join(texts) == data.decode()
    nonempty = [t for t in texts if t]
    assert all(t.endswith("\n") for t in nonempty[:-1])  # whole lines only


def test_plan_splits_one_per_nonempty_chunk_with_replicas():
    splits = plan_splits("/f", 10, [(8, 2, ("n2",)), (0, 4, ("n1", "n3")), (4, 4, ()), (10, 0, ())])
    assert [(s.index, s.offset, s.length, s.replicas) for s in splits] == [
        (0, 0, 4, ("n1", "n3")), (1, 4, 4, ()), (2, 8, 2, ("n2",)),
    ]
    assert Split.from_wire(splits[0].to_wire()) == splits[0]


# -- executing tasks ------------------------------------------------------------------------------


def test_map_runs_are_sorted_combined_and_partitioned():
    job = load_job("wordcount")
    res = run_map(job, "/a", "b a b c", lambda k: 0 if k < "b" else 1, 2)
    assert [msgpack.unpackb(r) for r in res.runs] == [[["a", [1]]], [["b", [2]], ["c", [1]]]]
    assert res.records == [1, 2]


def test_reduce_merges_runs_in_map_order():
    job = Job("concat", map=lambda k, v: [], reduce=lambda k, vs: "".join(vs))
    runs = [msgpack.packb([["k", ["1", "2"]]]), msgpack.packb([["j", ["x"]], ["k", ["3"]]])]
    assert merge_runs(runs) == {"j": ["x"], "k": ["1", "2", "3"]}
    assert run_reduce(job, runs) == b"j x\nk 123\n"


def test_combine_never_changes_the_result():
    job = load_job("wordcount")
    plain = Job("wc-no-combine", map=job.map, reduce=job.reduce)
    files = {f"/{i}": " ".join(random.Random(i).choice("abcde") for _ in range(200)) for i in range(5)}
    assert run_job(job, files, 3) == run_job(plain, files, 3)


def test_job_code_errors_become_job_failures():
    bad_key = Job("bad", map=lambda k, v: [(1, 2)], reduce=lambda k, vs: 0)
    with pytest.raises(JobFailure, match="keys are str"):
        run_map(bad_key, "/a", "x", lambda k: 0, 1)
    raising = Job("raise", map=lambda k, v: 1 / 0, reduce=lambda k, vs: 0)
    with pytest.raises(JobFailure, match="ZeroDivisionError"):
        run_map(raising, "/a", "x", lambda k: 0, 1)
    unpackable = Job("obj", map=lambda k, v: [("k", object())], reduce=lambda k, vs: 0)
    with pytest.raises(JobFailure, match="msgpack"):
        run_map(unpackable, "/a", "x", lambda k: 0, 1)
    bad_reduce = Job("r", map=lambda k, v: [("k", 1)], reduce=lambda k, vs: vs[5])
    with pytest.raises(JobFailure, match="IndexError"):
        run_reduce(bad_reduce, [msgpack.packb([["k", [1]]])])


# -- the coordinator's rules ----------------------------------------------------------------------

WORKERS = ["n1", "n2", "n3"]


def make_scheduler(m: int = 3, r: int = 2, rules: Rules | None = None, replicas=None) -> Scheduler:
    s = Scheduler(rules or Rules(backup_min_s=5.0))
    splits = [Split("/in", i, i * 10, 10, m * 10, tuple((replicas or {}).get(i, ()))) for i in range(m)]
    s.submit(JobSpec("j1", "wordcount", ("/in",), "/out", r), splits, 0.0)
    for w in WORKERS:
        s.heard(w, 1, 0.0)
    return s


def run_maps(s: Scheduler, now: float = 1.0) -> dict[int, str]:
    """Hand out and complete every map task round-robin; returns map index -> worker."""
    done = {}
    i = 0
    while s.jobs["j1"].phase() is Kind.MAP:
        w = WORKERS[i % len(WORKERS)]
        a = s.assign(w, 1, now)
        assert a is not None and a.attempt.kind is Kind.MAP
        assert s.complete(a.attempt.id, now) is Verdict.ACCEPTED
        done[a.task.index] = w
        i += 1
    return done


def test_tasks_are_idle_then_in_progress_then_completed():
    """§3.2: for each map task and reduce task, the master stores its state and the worker's identity."""
    s = make_scheduler(m=1, r=1)
    job = s.jobs["j1"]
    assert job.maps[0].state is TaskState.IDLE
    a = s.assign("n1", 1, 0.5)
    assert a is not None and job.maps[0].state is TaskState.IN_PROGRESS and a.attempt.worker == "n1"
    assert s.complete(a.attempt.id, 0.7) is Verdict.ACCEPTED
    assert job.maps[0].state is TaskState.COMPLETED and job.maps[0].done_by == a.attempt.id


def test_reduce_tasks_wait_for_every_map_and_get_every_map_output_location():
    """§3.2: the master is the conduit through which intermediate file locations reach the reduce tasks."""
    s = make_scheduler(m=2, r=2)
    a = s.assign("n1", 1, 0.1)
    b = s.assign("n2", 1, 0.1)
    assert a and b and s.assign("n3", 1, 0.1) is None  # no reduce before the map phase ends
    s.complete(a.attempt.id, 0.2)
    assert s.assign("n3", 1, 0.2) is None
    s.complete(b.attempt.id, 0.3)
    red = s.assign("n3", 1, 0.4)
    assert red is not None and red.attempt.kind is Kind.REDUCE and red.task.index == 0
    assert red.sources == [(0, "n1", 1, a.attempt.id), (1, "n2", 1, b.attempt.id)]


def test_map_tasks_go_to_a_worker_holding_a_replica_when_one_asks():
    """§3.4: the master attempts to schedule a map task on a machine that contains a replica of its input."""
    s = make_scheduler(m=3, r=1, replicas={0: ("n1",), 1: ("n2",), 2: ("n3", "n2")})
    got = s.assign("n3", 1, 0.1)
    assert got is not None and got.task.index == 2 and got.attempt.local is True
    got = s.assign("n2", 1, 0.1)
    assert got is not None and got.task.index == 1 and got.attempt.local is True
    got = s.assign("n2", 1, 0.1)  # only task 0 is left, its replica is on n1: run it anyway
    assert got is not None and got.task.index == 0 and got.attempt.local is False


def test_a_failed_worker_s_in_progress_and_completed_map_tasks_are_reset():
    """§3.3: completed map tasks are re-executed on a failure because their output is on the failed machine's
    local disk; completed reduce tasks do not need to be, since their output is in the global file system."""
    s = make_scheduler(m=3, r=2)
    on = run_maps(s)
    job = s.jobs["j1"]
    red = s.assign("n2", 1, 2.0)
    assert red is not None
    s.complete(red.attempt.id, 2.5)
    red2 = s.assign("n1", 1, 3.0)
    assert red2 is not None and red2.task.index == 1
    s.heard("n2", 1, 9.0)
    s.heard("n3", 1, 9.0)
    assert s.silent(10.0, timeout_s=5.0) == ["n1"]
    assert s.attempts[red2.attempt.id].outcome is Outcome.LOST
    assert job.reduces[1].state is TaskState.IDLE
    assert job.reduces[0].state is TaskState.COMPLETED  # its output is in the DFS
    for i, w in on.items():
        assert job.maps[i].state is (TaskState.IDLE if w == "n1" else TaskState.COMPLETED)
    assert job.phase() is Kind.MAP
    again = s.assign("n3", 1, 10.0)
    assert again is not None and again.attempt.kind is Kind.MAP and on[again.task.index] == "n1"


def test_no_reexec_maps_bug_leaves_a_dead_worker_s_maps_completed():
    s = make_scheduler(m=3, r=1, rules=Rules(reexec_maps=False))
    on = run_maps(s)
    s.heard("n2", 1, 9.0)
    s.heard("n3", 1, 9.0)
    s.silent(10.0, timeout_s=5.0)
    assert all(t.state is TaskState.COMPLETED for t in s.jobs["j1"].maps)
    red = s.assign("n2", 1, 10.0)
    assert red is not None and any(w == "n1" for _, w, _, _ in red.sources) and "n1" in on.values()


def test_a_restarted_worker_is_a_failed_worker():
    s = make_scheduler(m=1, r=1)
    a = s.assign("n1", 1, 0.1)
    assert a is not None
    lost = s.heard("n1", 2, 0.5)
    assert [x.id for x in lost] == [a.attempt.id]
    assert s.jobs["j1"].maps[0].state is TaskState.IDLE
    assert s.complete(a.attempt.id, 0.6) is Verdict.STALE  # the old incarnation's output is gone
    assert s.assign("n1", 1, 0.7) is None  # nor does the old incarnation get work
    assert s.assign("n1", 2, 0.7) is not None


def test_a_second_completion_of_a_completed_task_is_ignored():
    """§3.3: if the master receives a completion message for an already completed map task, it ignores it."""
    s = make_scheduler(m=1, r=1, rules=Rules(backup_min_s=1.0))
    first = s.assign("n1", 1, 0.0)
    backup = s.assign("n2", 1, 1.5)
    assert first and backup and backup.attempt.backup
    assert s.complete(backup.attempt.id, 2.0) is Verdict.ACCEPTED
    assert s.complete(first.attempt.id, 2.1) is Verdict.DUPLICATE
    assert s.attempts[first.attempt.id].outcome is Outcome.DUPLICATE
    assert s.complete(backup.attempt.id, 2.2) is Verdict.DUPLICATE  # the same report twice
    red = s.assign("n3", 1, 2.3)
    assert red is not None and red.sources == [(0, "n2", 1, backup.attempt.id)]


def test_double_commit_bug_counts_both_map_outputs():
    s = make_scheduler(m=1, r=1, rules=Rules(backup_min_s=1.0, double_commit=True))
    first = s.assign("n1", 1, 0.0)
    backup = s.assign("n2", 1, 1.5)
    assert first and backup
    s.complete(backup.attempt.id, 2.0)
    assert s.complete(first.attempt.id, 2.1) is Verdict.COUNTED_TWICE
    red = s.assign("n3", 1, 2.3)
    assert red is not None and [src[3] for src in red.sources] == [backup.attempt.id, first.attempt.id]


def test_double_commit_bug_counts_the_same_report_delivered_twice():
    s = make_scheduler(m=2, r=1, rules=Rules(double_commit=True))
    a = s.assign("n1", 1, 0.0)
    b = s.assign("n2", 1, 0.0)
    assert a and b
    assert s.complete(a.attempt.id, 0.5) is Verdict.ACCEPTED
    assert s.complete(a.attempt.id, 0.6) is Verdict.COUNTED_TWICE  # e.g. a duplicated frame
    s.complete(b.attempt.id, 0.7)
    red = s.assign("n3", 1, 1.0)
    assert red is not None and [src[3] for src in red.sources] == [a.attempt.id, a.attempt.id, b.attempt.id]


def test_backups_only_when_no_task_is_idle_and_only_for_stragglers():
    """§3.6: when an operation is close to completion, the master schedules backup executions
    of the remaining in-progress tasks; the task is completed whenever either execution completes."""
    s = make_scheduler(m=2, r=1, rules=Rules(backup_min_s=1.0, backup_factor=3.0))
    a = s.assign("n1", 1, 0.0)
    assert a is not None
    b = s.assign("n2", 1, 2.0)
    assert b is not None and not b.attempt.backup and b.attempt.idle_left == 0  # an idle task first
    s.complete(b.attempt.id, 2.5)
    assert s.straggler_s(s.jobs["j1"], Kind.MAP) == 1.5  # 3 x the median of 0.5 s
    assert s.assign("n3", 1, 1.0) is None  # a has run 1.0 s < 1.5 s
    backup = s.assign("n3", 1, 1.6)
    assert backup is not None and backup.attempt.backup and backup.task.index == 0
    assert s.assign("n2", 1, 5.0) is None  # at most one backup per task
    assert s.complete(backup.attempt.id, 5.0) is Verdict.ACCEPTED
    assert s.complete(a.attempt.id, 9.0) is Verdict.DUPLICATE


def test_no_backup_on_the_worker_already_running_the_task():
    s = make_scheduler(m=1, r=1, rules=Rules(backup_min_s=1.0))
    a = s.assign("n1", 1, 0.0)
    assert a is not None and s.assign("n1", 1, 5.0) is None


def test_backups_can_be_switched_off():
    s = make_scheduler(m=1, r=1, rules=Rules(backups=False))
    assert s.assign("n1", 1, 0.0) is not None
    assert s.assign("n2", 1, 100.0) is None


def test_a_late_completion_from_a_live_worker_is_accepted():
    s = make_scheduler(m=1, r=1)
    a = s.assign("n1", 1, 0.0)
    assert a is not None
    s.heard("n2", 1, 9.0)
    s.heard("n3", 1, 9.0)
    s.silent(10.0, timeout_s=5.0)  # n1 was paused: its attempt is lost
    assert s.attempts[a.attempt.id].outcome is Outcome.LOST
    s.heard("n1", 1, 11.0)  # it resumes, same incarnation: its output is on its disk
    assert s.complete(a.attempt.id, 11.0) is Verdict.ACCEPTED


def test_attempts_the_worker_does_not_list_are_lost_after_the_grace():
    s = make_scheduler(m=2, r=1, rules=Rules(assign_grace_s=1.0))
    a = s.assign("n1", 1, 0.0)
    assert a is not None
    assert s.running_on("n1", 1, [], ping_sent_s=0.5) == []  # the assignment may still be on its way
    assert [x.id for x in s.running_on("n1", 1, [], ping_sent_s=2.0)] == [a.attempt.id]
    assert s.jobs["j1"].maps[a.task.index].state is TaskState.IDLE


def test_fetch_failures_rerun_a_map_after_the_threshold_or_at_once_if_its_worker_failed():
    s = make_scheduler(m=2, r=2, rules=Rules(fetch_failures_to_rerun=2, retry_backoff_s=0.0))
    run_maps(s)
    job = s.jobs["j1"]
    r1 = s.assign("n3", 1, 2.0)
    assert r1 is not None
    m0 = job.maps[0]
    holder = m0.done_by
    assert holder is not None
    s.fetch_failed(r1.attempt.id, 0, holder, 2.1, "timeout")
    assert s.attempts[r1.attempt.id].outcome is Outcome.FAILED and job.reduces[r1.task.index].state is TaskState.IDLE
    assert m0.state is TaskState.COMPLETED
    r2 = s.assign("n3", 1, 2.2)
    assert r2 is not None
    s.fetch_failed(r2.attempt.id, 0, holder, 2.3, "timeout")
    assert m0.state is TaskState.IDLE and job.phase() is Kind.MAP


def test_job_code_failures_fail_the_job_after_the_limit_but_io_failures_never_do():
    s = make_scheduler(m=1, r=1, rules=Rules(max_task_failures=2, retry_backoff_s=0.0))
    for i in range(3):
        a = s.assign("n1", 1, i * 0.1)
        assert a is not None
        s.fail(a.attempt.id, i * 0.1, "DFS read timed out", job_error=False)
    assert s.jobs["j1"].state is JobState.RUNNING
    for i in range(2):
        a = s.assign("n1", 1, 0.3 + i * 0.1)
        assert a is not None
        s.fail(a.attempt.id, 0.3 + i * 0.1, "map raised KeyError", job_error=True)
    job = s.jobs["j1"]
    assert job.state is JobState.FAILED and "KeyError" in job.error
    assert s.assign("n1", 1, 0.4) is None


def test_a_failed_task_backs_off_exponentially_and_no_backup_runs_meanwhile():
    s = make_scheduler(m=1, r=1, rules=Rules(retry_backoff_s=1.0, max_backoff_s=3.0, backup_min_s=0.1))
    times = []
    now = 0.0
    for _ in range(4):
        while (a := s.assign("n1", 1, now)) is None:
            assert s.assign("n2", 1, now) is None  # the idle task is backing off: no backup of anything
            now = round(now + 0.25, 2)
        times.append(now)
        s.fail(a.attempt.id, now, "DFS unavailable", job_error=False)
    assert times == [0.0, 1.0, 3.0, 6.0]  # waits of 1, 2, then at most 3 s
    a = s.assign("n1", 1, 9.0)
    assert a is not None and s.complete(a.attempt.id, 9.5) is Verdict.ACCEPTED
    assert s.jobs["j1"].maps[0].retries == 0


def test_done_when_every_reduce_completed_and_done_is_final():
    s = make_scheduler(m=1, r=2)
    run_maps(s)
    for w in ("n1", "n2"):
        a = s.assign(w, 1, 2.0)
        assert a is not None
        s.complete(a.attempt.id, 2.5)
    job = s.jobs["j1"]
    assert job.state is JobState.DONE and job.finished_s == 2.5
    s.silent(100.0, timeout_s=1.0)  # every worker fails afterwards: nothing is reset
    assert job.state is JobState.DONE and all(t.state is TaskState.COMPLETED for t in job.maps)


def test_older_jobs_are_served_first():
    s = make_scheduler(m=1, r=1)
    s.submit(JobSpec("j2", "wordcount", ("/in",), "/out2", 1), [Split("/in", 0, 0, 5, 5)], 0.0)
    a = s.assign("n1", 1, 0.1)
    b = s.assign("n2", 1, 0.1)
    assert a and b and a.spec.id == "j1" and b.spec.id == "j2"
    with pytest.raises(ValueError, match="exists"):
        s.submit(JobSpec("j2", "wordcount", ("/in",), "/out2", 1), [], 0.0)


def test_the_table_survives_a_round_trip_through_its_wire_form():
    s = make_scheduler(m=3, r=2)
    run_maps(s)
    a = s.assign("n1", 1, 2.0)
    assert a is not None
    wire = msgpack.unpackb(msgpack.packb(s.to_wire()))
    t = Scheduler.from_wire(wire, s.rules)
    assert t.to_wire() == s.to_wire()
    assert t.next_attempt == s.next_attempt
    t.presume_alive(3.0)
    assert t.alive("n1", 1)
    assert t.complete(a.attempt.id, 3.5) is Verdict.ACCEPTED


def test_a_random_schedule_of_failures_ends_with_the_job_done_and_each_map_output_counted_once():
    """Whatever fails and whenever, once failures stop the job completes, and each map task's output
    is counted once (no double counting without the double-commit bug)."""
    for seed in range(40):
        rng = random.Random(seed)
        s = Scheduler(Rules(backup_min_s=0.5, fetch_failures_to_rerun=2, retry_backoff_s=0.05))
        s.submit(JobSpec("j1", "wordcount", ("/in",), "/out", 3),
                 [Split("/in", i, i, 1, 6, (WORKERS[i % 3],)) for i in range(6)], 0.0)
        inc = dict.fromkeys(WORKERS, 1)
        running: list[tuple[str, int, int, list]] = []
        now = 0.0
        for step in range(400):
            now += 0.1
            w = rng.choice(WORKERS)
            for x in WORKERS:
                s.heard(x, inc[x], now)
            roll = rng.random()
            if roll < 0.03 and step < 300:
                inc[w] += 1
                s.heard(w, inc[w], now)
                running = [r for r in running if r[0] != w]
            elif roll < 0.5:
                a = s.assign(w, inc[w], now)
                if a is not None:
                    running.append((w, inc[w], a.attempt.id, a.sources))
            elif running:
                w2, i2, aid, sources = running.pop(rng.randrange(len(running)))
                if inc[w2] != i2:
                    continue
                if sources and rng.random() < 0.2 and step < 300:
                    m, _, _, holder = rng.choice(sources)
                    s.fetch_failed(aid, m, holder, now, "injected")
                else:
                    s.complete(aid, now)
            if s.jobs["j1"].state is JobState.DONE:
                break
        assert s.jobs["j1"].state is JobState.DONE, seed
        job = s.jobs["j1"]
        # A map output lost after every reducer had fetched it leaves its task idle in a finished job: fine.
        assert all(not t.extra for t in job.maps), seed
        assert all(t.state is TaskState.COMPLETED for t in job.reduces), seed
