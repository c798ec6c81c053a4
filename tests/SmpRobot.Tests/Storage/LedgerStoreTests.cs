using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Time.Testing;
using SmpRobot.Controller.Storage;
using SmpRobot.Geometry;

namespace SmpRobot.Tests.Storage;

/// <summary>The ledger's contract, run against both backends (<see cref="SqliteLedgerStoreTests"/>, <see cref="PostgresLedgerStoreTests"/>).</summary>
public abstract class LedgerStoreTests : IDisposable
{
    private protected readonly string _dir = Directory.CreateTempSubdirectory("smp-ledger-").FullName;
    private protected readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 23, 21, 5, 12, TimeSpan.Zero));

    private protected string DbPath => Path.Combine(_dir, "nested", "ledger.db");

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing) => Directory.Delete(_dir, recursive: true);

    /// <summary>A store on this test's own database (a new connection each time: reopening it).</summary>
    private protected abstract LedgerStore Open();

    private protected virtual bool IsPostgres => false;

    private protected static List<PlannedDot> Dots(int count) =>
        Enumerable.Range(0, count).Select(i => new PlannedDot(i, $"d{i + 1:D5}", i * 1.0, i * 0.5, 1.0, 1.0, 200, "charcoal-1")).ToList();

    [Fact]
    public void Creates_directory_schema_and_session_with_pending_dots()
    {
        using var store = Open();
        Assert.Equal(!IsPostgres, File.Exists(DbPath));
        var session = store.CreateSession("crown", "{\"name\":\"crown\"}", "desk-200", Dots(5));
        Assert.Matches(@"^s-20261123-210512-[0-9a-f]{4}$", session.Id);
        Assert.Equal(SessionPhase.Created, session.Phase);
        Assert.Equal(_time.GetUtcNow(), session.CreatedAt);
        Assert.Equal(session, store.FindSession(session.Id));
        Assert.Null(store.FindSession("s-nope"));
        Assert.Equal("{\"name\":\"crown\"}", store.LoadPlanJson(session.Id));
        var dots = store.LoadDots(session.Id);
        Assert.Equal(Dots(5), dots.Select(d => d.Dot));
        Assert.All(dots, d => Assert.Equal(DotLedgerState.Pending, d.State));
        Assert.All(dots, d => Assert.Null(d.TargetMm));
        Assert.Equal(new DotTally(5, 5, 0, 0, 0, 0), store.Tally(session.Id));
        Assert.Contains(store.ReadAudit(session.Id), a => a.Kind == "session-created" && a.Message.Contains("5 dots", StringComparison.Ordinal));
    }

    [Fact]
    public void Session_ids_are_unique_within_the_same_second()
    {
        using var store = Open();
        var ids = Enumerable.Range(0, 40).Select(_ => store.CreateSession("p", "{}", "sim", Dots(1)).Id).ToList();
        Assert.Equal(ids.Count, ids.Distinct().Count());
        Assert.Equal(40, store.ListSessions().Count);
    }

    [Fact]
    public void Dot_states_follow_the_allowed_transitions_only()
    {
        using var store = Open();
        var s = store.CreateSession("p", "{}", "sim", Dots(3)).Id;
        var target = new Vec3(100.0125, 99.5, 18.25);

        var e = Assert.Throws<InvalidOperationException>(() => store.MarkPlaced(s, 0));
        Assert.Contains("dot d00001 (seq 0)", e.Message);
        Assert.Contains("is Pending", e.Message);
        Assert.Throws<InvalidOperationException>(() => store.MarkInDoubt(s, 0, "x"));

        store.MarkCommanded(s, 0, target);
        Assert.Throws<InvalidOperationException>(() => store.MarkCommanded(s, 0, target));
        store.MarkPlaced(s, 0);
        Assert.Throws<InvalidOperationException>(() => store.MarkPlaced(s, 0));
        Assert.Throws<InvalidOperationException>(() => store.MarkInDoubt(s, 0, "late"));
        Assert.Throws<InvalidOperationException>(() => store.MarkCommanded(s, 0, target));

        store.MarkCommanded(s, 1, target);
        store.MarkInDoubt(s, 1, "link lost after plunge");
        Assert.Throws<InvalidOperationException>(() => store.MarkPlaced(s, 1));
        Assert.Throws<InvalidOperationException>(() => store.MarkCommanded(s, 1, target));

        Assert.Throws<KeyNotFoundException>(() => store.MarkCommanded(s, 3, target));
        Assert.Throws<KeyNotFoundException>(() => store.MarkCommanded("s-nope", 0, target));
        Assert.Throws<ArgumentException>(() => store.MarkCommanded(s, 2, new Vec3(double.NaN, 0, 0)));

        var dots = store.LoadDots(s);
        Assert.Equal(DotLedgerState.Placed, dots[0].State);
        Assert.Equal(target, dots[0].TargetMm);
        Assert.Equal(DotLedgerState.InDoubt, dots[1].State);
        Assert.Equal("link lost after plunge", dots[1].Note);
        Assert.Equal(DotLedgerState.Pending, dots[2].State);
        Assert.Equal(new DotTally(3, 1, 0, 1, 0, 1), store.Tally(s));
    }

    [Fact]
    public void Sessions_and_dot_states_survive_closing_and_reopening()
    {
        string id;
        var started = _time.GetUtcNow().AddSeconds(3);
        using (var store = Open())
        {
            id = store.CreateSession("crown", "{\"units\":\"mm\"}", "desk-200", Dots(4)).Id;
            store.UpdateSession(id, SessionPhase.Paused, "operator pause", 12.5, 10.25, started, null);
            store.MarkCommanded(id, 0, new Vec3(1, 2, 3));
            store.MarkPlaced(id, 0);
            store.MarkCommanded(id, 1, new Vec3(4, 5, 6));
            store.Audit(id, "note", "hello");
            store.Audit(null, "machine", "homed");
        }
        using (var store = Open())
        {
            var s = store.FindSession(id)!;
            Assert.Equal(SessionPhase.Paused, s.Phase);
            Assert.Equal("operator pause", s.Reason);
            Assert.Equal(12.5, s.ElapsedSeconds);
            Assert.Equal(10.25, s.KinematicSeconds);
            Assert.Equal(started, s.StartedAt);
            Assert.Null(s.EndedAt);
            Assert.Equal("desk-200", s.ProfileName);
            Assert.Equal("crown", s.PlanName);
            var dots = store.LoadDots(id);
            Assert.Equal([DotLedgerState.Placed, DotLedgerState.Commanded, DotLedgerState.Pending, DotLedgerState.Pending], dots.Select(d => d.State));
            Assert.Equal(new Vec3(4, 5, 6), dots[1].TargetMm);
            Assert.Equal(["session-created", "note"], store.ReadAudit(id).Select(a => a.Kind));
            Assert.Equal(["session-created", "note", "machine"], store.ReadAudit(null).Select(a => a.Kind));
            Assert.Equal("{\"units\":\"mm\"}", store.LoadPlanJson(id));
        }
    }

    [Fact]
    public void Recover_after_restart_faults_running_sessions_and_puts_commanded_dots_in_doubt()
    {
        string running, pausing, paused, done;
        using (var store = Open())
        {
            running = store.CreateSession("a", "{}", "sim", Dots(4)).Id;
            pausing = store.CreateSession("b", "{}", "sim", Dots(2)).Id;
            paused = store.CreateSession("c", "{}", "sim", Dots(2)).Id;
            done = store.CreateSession("d", "{}", "sim", Dots(1)).Id;
            store.UpdateSession(running, SessionPhase.Running, "", 1, 1, _time.GetUtcNow(), null);
            store.UpdateSession(pausing, SessionPhase.Pausing, "operator", 1, 1, _time.GetUtcNow(), null);
            store.UpdateSession(paused, SessionPhase.Paused, "operator", 1, 1, _time.GetUtcNow(), null);
            store.MarkCommanded(running, 0, new Vec3(1, 1, 1));
            store.MarkPlaced(running, 0);
            store.MarkCommanded(running, 1, new Vec3(2, 2, 2));
            store.MarkCommanded(done, 0, new Vec3(3, 3, 3));
            store.MarkPlaced(done, 0);
            store.UpdateSession(done, SessionPhase.Completed, "", 5, 4, _time.GetUtcNow(), _time.GetUtcNow());
            // "crash": the store is dropped without any further update.
        }
        _time.Advance(TimeSpan.FromMinutes(2));
        using (var store = Open())
        {
            var affected = store.RecoverAfterRestart("controller restarted");
            Assert.Equal([running, pausing], affected);

            var r = store.FindSession(running)!;
            Assert.Equal(SessionPhase.Faulted, r.Phase);
            // The reason says what is really in doubt (issue #15: "dots are in doubt" with 0 in doubt).
            Assert.Equal("controller restarted; 1 dot(s) that were being placed are in doubt", r.Reason);
            Assert.Equal(SessionPhase.Faulted, store.FindSession(pausing)!.Phase);
            Assert.Equal("controller restarted; no dot was being placed", store.FindSession(pausing)!.Reason);
            Assert.Equal(SessionPhase.Paused, store.FindSession(paused)!.Phase);
            Assert.Equal(SessionPhase.Completed, store.FindSession(done)!.Phase);

            var dots = store.LoadDots(running);
            Assert.Equal([DotLedgerState.Placed, DotLedgerState.InDoubt, DotLedgerState.Pending, DotLedgerState.Pending], dots.Select(d => d.State));
            Assert.Equal("controller restarted", dots[1].Note);
            Assert.Equal(new Vec3(2, 2, 2), dots[1].TargetMm);
            Assert.Equal(new DotTally(4, 2, 0, 1, 0, 1), store.Tally(running));
            Assert.Equal(new DotTally(1, 0, 0, 1, 0, 0), store.Tally(done));

            var audit = store.ReadAudit(running);
            Assert.Equal("recovered", audit[^1].Kind);
            Assert.Equal(_time.GetUtcNow(), audit[^1].At);
            Assert.Contains("1 commanded dot(s) now in doubt", audit[^1].Message);

            // Idempotent: nothing left to recover.
            Assert.Empty(store.RecoverAfterRestart("again"));
        }
    }

    [Fact]
    public void Recover_puts_a_commanded_dot_in_doubt_even_when_the_session_is_not_running()
    {
        using var store = Open();
        var s = store.CreateSession("e", "{}", "sim", Dots(2)).Id;
        store.MarkCommanded(s, 0, new Vec3(1, 1, 1));
        store.UpdateSession(s, SessionPhase.EmergencyStopped, "e-stop", 1, 1, null, null);
        Assert.Equal([s], store.RecoverAfterRestart("restart"));
        Assert.Equal(SessionPhase.EmergencyStopped, store.FindSession(s)!.Phase);
        Assert.Equal(DotLedgerState.InDoubt, store.LoadDots(s)[0].State);
    }

    [Fact]
    public void Timers_of_a_running_session_are_stored_without_touching_its_phase()
    {
        using var store = Open();
        var s = store.CreateSession("p", "{}", "sim", Dots(2)).Id;
        store.UpdateSession(s, SessionPhase.Pausing, "pausing: finishing the current dot", 1, 1, _time.GetUtcNow(), null);
        store.UpdateTimers(s, 12.5, 10.25);
        var r = store.FindSession(s)!;
        Assert.Equal((SessionPhase.Pausing, "pausing: finishing the current dot", 12.5, 10.25), (r.Phase, r.Reason, r.ElapsedSeconds, r.KinematicSeconds));
        Assert.Throws<KeyNotFoundException>(() => store.UpdateTimers("s-nope", 1, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => store.UpdateTimers(s, double.NaN, 1));
    }

    [Fact]
    public void The_kept_tally_always_equals_a_fresh_count_of_the_file()
    {
        using var store = Open();
        var s = store.CreateSession("p", "{}", "sim", Dots(8)).Id;
        DotTally Fresh()
        {
            // A second store on the same file counts from the database.
            using var other = Open();
            return other.Tally(s);
        }
        void Check() => Assert.Equal(Fresh(), store.Tally(s));
        Check();
        for (var seq = 0; seq < 6; seq++) store.MarkCommanded(s, seq, new Vec3(seq, seq, seq));
        Check();
        store.MarkPlaced(s, 0);
        store.MarkPlaced(s, 1);
        store.MarkInDoubt(s, 2, "fault");
        Check();
        Assert.Throws<InvalidOperationException>(() => store.MarkPlaced(s, 7)); // refused: no change counted
        Check();
        store.RecoverAfterRestart("restart"); // 3, 4 and 5 in doubt
        Check();
        Assert.Equal(new DotTally(8, 2, 0, 2, 0, 4), store.Tally(s));
        store.Resolve(s, ["d00003", "d00004"], DotLedgerState.Pending, "ana");
        store.Resolve(s, ["d00005"], DotLedgerState.Skipped, "ana");
        Check();
        Assert.Equal(new DotTally(8, 4, 0, 2, 1, 1), store.Tally(s));
        Assert.Equal(["d00006"], store.LoadDotsInState(s, DotLedgerState.InDoubt).Select(d => d.Dot.DotId));
        Assert.Equal(["d00003", "d00004"], store.LoadDotsInState(s, DotLedgerState.Pending, 2).Select(d => d.Dot.DotId));
        Assert.Equal(new DotTally(0, 0, 0, 0, 0, 0), store.Tally("s-unknown"));
    }

    [Fact]
    public void Resolve_changes_only_dots_in_doubt_to_placed_pending_or_skipped()
    {
        using var store = Open();
        var s = store.CreateSession("p", "{}", "sim", Dots(5)).Id;
        for (var seq = 0; seq < 4; seq++)
        {
            store.MarkCommanded(s, seq, new Vec3(seq, seq, seq));
        }
        store.MarkPlaced(s, 3);
        store.RecoverAfterRestart("restart");  // seq 0..2 in doubt

        var bad = Assert.Throws<ArgumentException>(() => store.Resolve(s, ["d00001"], DotLedgerState.InDoubt, "ana"));
        Assert.Contains("Placed, Pending (redo) or Skipped", bad.Message);
        Assert.Throws<ArgumentException>(() => store.Resolve(s, ["d00001"], DotLedgerState.Commanded, "ana"));
        Assert.Throws<ArgumentException>(() => store.Resolve(s, ["d00001"], DotLedgerState.Placed, " "));
        var unknown = Assert.Throws<ArgumentException>(() => store.Resolve(s, ["d00001", "zz"], DotLedgerState.Placed, "ana"));
        Assert.Contains("dot zz", unknown.Message);
        var notInDoubt = Assert.Throws<InvalidOperationException>(() => store.Resolve(s, ["d00002", "d00004"], DotLedgerState.Skipped, "ana"));
        Assert.Contains("dot d00004", notInDoubt.Message);
        Assert.Contains("Placed", notInDoubt.Message);
        Assert.Throws<InvalidOperationException>(() => store.Resolve(s, ["d00005"], DotLedgerState.Skipped, "ana"));
        Assert.Throws<KeyNotFoundException>(() => store.Resolve("s-nope", ["d00001"], DotLedgerState.Placed, "ana"));
        // All or nothing: the failed calls changed nothing.
        Assert.Equal(new DotTally(5, 1, 0, 1, 0, 3), store.Tally(s));

        Assert.Equal(1, store.Resolve(s, ["d00001"], DotLedgerState.Placed, "ana"));
        Assert.Equal(1, store.Resolve(s, ["d00002", "d00002"], DotLedgerState.Pending, "ana"));
        Assert.Equal(1, store.Resolve(s, ["d00003"], DotLedgerState.Skipped, "ben"));
        Assert.Equal(0, store.Resolve(s, [], DotLedgerState.Skipped, "ben"));
        Assert.Throws<InvalidOperationException>(() => store.Resolve(s, ["d00001"], DotLedgerState.Skipped, "ana"));

        var dots = store.LoadDots(s);
        Assert.Equal(DotLedgerState.Placed, dots[0].State);
        Assert.Equal(new Vec3(0, 0, 0), dots[0].TargetMm);
        Assert.Contains("resolved as Placed by ana", dots[0].Note);
        Assert.Equal(DotLedgerState.Pending, dots[1].State);
        Assert.Null(dots[1].TargetMm);  // a redo is aimed afresh
        Assert.Equal(DotLedgerState.Skipped, dots[2].State);
        Assert.Equal(new DotTally(5, 2, 0, 2, 1, 0), store.Tally(s));
        // A redone dot goes through the normal cycle again.
        store.MarkCommanded(s, 1, new Vec3(9, 9, 9));
        store.MarkPlaced(s, 1);

        var resolves = store.ReadAudit(s).Where(a => a.Kind == "resolve").Select(a => a.Message).ToList();
        Assert.Equal(3, resolves.Count);
        Assert.Contains("ana resolved 1 dot(s) in doubt as Placed: d00001", resolves[0]);
        Assert.Contains("ben", resolves[2]);
    }

    [Fact]
    public void List_is_newest_first_and_limited()
    {
        using var store = Open();
        var ids = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            ids.Add(store.CreateSession($"p{i}", "{}", "sim", Dots(1)).Id);
            _time.Advance(TimeSpan.FromMinutes(1));
        }
        ids.Reverse();
        Assert.Equal(ids, store.ListSessions().Select(s => s.Id));
        Assert.Equal(ids.Take(2), store.ListSessions(2).Select(s => s.Id));
    }

    [Fact]
    public void Update_and_audit_check_their_session()
    {
        using var store = Open();
        Assert.Throws<KeyNotFoundException>(() => store.UpdateSession("s-nope", SessionPhase.Running, "", 0, 0, null, null));
        Assert.Throws<KeyNotFoundException>(() => store.Audit("s-nope", "x", "y"));
        var s = store.CreateSession("p", "{}", "sim", Dots(1)).Id;
        Assert.Throws<ArgumentOutOfRangeException>(() => store.UpdateSession(s, SessionPhase.Running, "", double.NaN, 0, null, null));
        var end = _time.GetUtcNow().AddHours(2);
        store.UpdateSession(s, SessionPhase.Completed, "done", 7200, 3600, _time.GetUtcNow(), end);
        Assert.Equal(end, store.FindSession(s)!.EndedAt);
    }

    [Fact]
    public void Create_checks_seqs_and_ids()
    {
        using var store = Open();
        Assert.Throws<ArgumentException>(() => store.CreateSession("p", "{}", "sim", []));
        var gap = Dots(3);
        gap[2] = gap[2] with { Seq = 5 };
        Assert.Throws<ArgumentException>(() => store.CreateSession("p", "{}", "sim", gap));
        var dup = Dots(3);
        dup[2] = dup[2] with { DotId = dup[0].DotId };
        var e = Assert.Throws<ArgumentException>(() => store.CreateSession("p", "{}", "sim", dup));
        Assert.Contains("d00001", e.Message);
        // Seqs given out of order are stored by seq.
        var shuffled = Dots(3);
        shuffled.Reverse();
        var s = store.CreateSession("p", "{}", "sim", shuffled).Id;
        Assert.Equal(["d00001", "d00002", "d00003"], store.LoadDots(s).Select(d => d.Dot.DotId));
        Assert.Equal([s], store.ListSessions().Select(x => x.Id));
    }

    [Fact]
    public void Create_session_of_30000_dots_in_one_transaction()
    {
        using var store = Open();
        var s = store.CreateSession("big", "{}", "desk-200", Dots(30_000)).Id;
        Assert.Equal(new DotTally(30_000, 30_000, 0, 0, 0, 0), store.Tally(s));
        var dots = store.LoadDots(s);
        Assert.Equal(30_000, dots.Count);
        Assert.Equal("d30000", dots[^1].Dot.DotId);
        Assert.Equal(29_999, dots[^1].Dot.Seq);
    }

    [Fact]
    public async Task Concurrent_callers_are_serialised()
    {
        using var store = Open();
        var s = store.CreateSession("p", "{}", "sim", Dots(200)).Id;
        var tasks = Enumerable.Range(0, 4).Select(worker => Task.Run(() =>
        {
            for (var seq = worker; seq < 200; seq += 4)
            {
                store.MarkCommanded(s, seq, new Vec3(seq, 0, 0));
                store.MarkPlaced(s, seq);
                _ = store.Tally(s);
            }
        })).ToArray();
        await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(new DotTally(200, 0, 0, 200, 0, 0), store.Tally(s));
    }

    [Fact]
    public void Disposed_store_refuses_calls()
    {
        var store = Open();
        store.Dispose();
        store.Dispose();
        Assert.Throws<ObjectDisposedException>(() => store.ListSessions());
    }

    [Fact]
    public void The_call_audit_and_calibrations_are_listed_with_no_filter_and_with_each()
    {
        using var store = Open();
        var s = store.CreateSession("p", "{}", "sim", Dots(1)).Id;
        store.AppendCallAudit(_time.GetUtcNow(), "ana", "operator", "/smprobot.v1.SessionService/Start", s, "{}", "OK");
        _time.Advance(TimeSpan.FromMinutes(1));
        store.AppendCallAudit(_time.GetUtcNow(), "ana", "admin", "/smprobot.v1.AccessService/AddUser", null, "{}", "OK");
        Assert.Equal(["Start", "AddUser"], store.ListCallAudit(null, null, 10).Select(c => c.Rpc[(c.Rpc.LastIndexOf('/') + 1)..]));
        Assert.Equal(["Start"], store.ListCallAudit(null, s, 10).Select(c => c.Rpc[(c.Rpc.LastIndexOf('/') + 1)..]));
        Assert.Equal(["AddUser"], store.ListCallAudit(_time.GetUtcNow(), null, 10).Select(c => c.Rpc[(c.Rpc.LastIndexOf('/') + 1)..]));

        var saved = store.SaveCalibration(CalibrationKind.Gantry, "synthetic@1280x720", "sim", "test", "{}", "{}", 0.01, 0.02, 0.03, 20, "", valid: true);
        Assert.Equal([saved.Id], store.ListCalibrations().Select(c => c.Id));
        Assert.Equal([saved.Id], store.ListCalibrations(CalibrationKind.Gantry, "synthetic@1280x720", "sim").Select(c => c.Id));
        Assert.Empty(store.ListCalibrations(camera: "device:1"));
    }

    /// <summary>Runs SQL on this test's database outside any store (as an earlier controller or another client left it).</summary>
    private protected abstract void ExecuteRaw(string sql);

    private static readonly string[] StopKinds = ["estop", "estop-reset"];

    [Fact]
    public void A_sessions_machine_events_are_those_of_its_window_written_by_the_controllers_that_ran_it()
    {
        using var chairA = Open();
        using var chairB = Open();
        Assert.NotEqual(chairA.ControllerId, chairB.ControllerId);
        var s = chairA.CreateSession("p", "{}", "sim", Dots(2)).Id;
        chairB.Audit(null, "estop", "B before A ran it");
        _time.Advance(TimeSpan.FromMinutes(1));
        var started = _time.GetUtcNow();
        chairA.UpdateSession(s, SessionPhase.Running, "", 0, 0, started, null);
        _time.Advance(TimeSpan.FromMinutes(1));
        chairA.Audit(null, "estop", "A stop");
        chairB.Audit(null, "estop", "B stop, another chair's");
        chairA.Audit(null, "homed", "homing cycle completed");
        chairA.Audit(s, "estop", "a session's own row is not a machine row");
        chairA.Audit(null, "estop-reset", "A reset");
        _time.Advance(TimeSpan.FromMinutes(1));
        chairA.UpdateSession(s, SessionPhase.Paused, "paused", 1, 1, started, null);
        _time.Advance(TimeSpan.FromMinutes(1));
        chairB.Audit(null, "estop", "B before it ran the session");
        // Chair B goes on with the session (a client can come back to any chair): from then on its rows count too.
        _time.Advance(TimeSpan.FromMinutes(1));
        chairB.UpdateSession(s, SessionPhase.Running, "", 1, 1, started, null);
        chairB.Audit(null, "estop", "B stop while it ran the session");
        _time.Advance(TimeSpan.FromMinutes(1));
        var ended = _time.GetUtcNow();
        chairB.UpdateSession(s, SessionPhase.Completed, "", 2, 2, started, ended);
        _time.Advance(TimeSpan.FromMinutes(1));
        chairA.Audit(null, "estop", "A after the session ended");

        // Any chair reads the same (the store selects them, not the reader).
        foreach (var reader in new[] { chairA, chairB })
        {
            var rows = reader.ReadMachineAuditWhileRunBy(s, started, ended, StopKinds);
            Assert.Equal(["A stop", "A reset", "B stop while it ran the session"], rows.Select(r => r.Message));
            Assert.Equal(["estop", "estop-reset", "estop"], rows.Select(r => r.Kind));
        }
        Assert.Equal(["A stop", "B stop while it ran the session"], chairA.ReadMachineAuditWhileRunBy(s, started, ended, ["estop"]).Select(r => r.Message));
        Assert.Equal(["A stop"], chairA.ReadMachineAuditWhileRunBy(s, started, ended, StopKinds, limit: 1).Select(r => r.Message));
        Assert.Equal(["homing cycle completed"], chairA.ReadMachineAuditWhileRunBy(s, started, ended, ["homed"]).Select(r => r.Message));
        Assert.Empty(chairA.ReadMachineAuditWhileRunBy(s, started, ended, []));
        // A session no controller ran has no machine events; nor has an unknown one.
        var never = chairA.CreateSession("p", "{}", "sim", Dots(1)).Id;
        Assert.Empty(chairA.ReadMachineAuditWhileRunBy(never, started, _time.GetUtcNow(), StopKinds));
        Assert.Empty(chairA.ReadMachineAuditWhileRunBy("s-nope", started, _time.GetUtcNow(), StopKinds));
    }

    [Fact]
    public void A_ledger_of_version_7_gains_the_controllers_and_its_rows_from_before_are_taken_by_time_alone()
    {
        string s;
        DateTimeOffset started, ended;
        using (var store = Open())
        {
            s = store.CreateSession("p", "{}", "sim", Dots(1)).Id;
            started = _time.GetUtcNow();
            _time.Advance(TimeSpan.FromMinutes(10));
            ended = _time.GetUtcNow();
            store.UpdateSession(s, SessionPhase.Completed, "", 1, 1, started, ended);
        }
        // As a controller of schema 7 left it: audit rows that name no controller, sessions that do not say who ran them.
        ExecuteRaw("""
            DROP TABLE session_controllers;
            DROP INDEX audit_machine_by_kind;
            ALTER TABLE audit DROP COLUMN controller;
            UPDATE schema_version SET version = 7;
            """);
        ExecuteRaw(FormattableString.Invariant($"""
            INSERT INTO audit (at, session_id, kind, message) VALUES ({started.AddMinutes(5).UtcTicks}, NULL, 'estop', 'a stop of schema 7');
            INSERT INTO audit (at, session_id, kind, message) VALUES ({ended.AddMinutes(5).UtcTicks}, NULL, 'estop', 'a later stop of schema 7');
            """));
        using var reopened = Open();
        Assert.Equal(["a stop of schema 7"], reopened.ReadMachineAuditWhileRunBy(s, started, ended, StopKinds).Select(r => r.Message));
        // A stop written now names its controller, which never ran that session.
        reopened.Audit(null, "estop", "a stop of schema 8", started.AddMinutes(6));
        Assert.Equal(["a stop of schema 7"], reopened.ReadMachineAuditWhileRunBy(s, started, ended, StopKinds).Select(r => r.Message));
        reopened.UpdateSession(s, SessionPhase.Running, "", 1, 1, started, null);
        reopened.Audit(null, "estop", "a stop of the run after the upgrade", _time.GetUtcNow().AddSeconds(1));
        Assert.Equal(["a stop of schema 7", "a stop of the run after the upgrade"], reopened.ReadMachineAuditWhileRunBy(s, started, _time.GetUtcNow().AddMinutes(1), StopKinds).Select(r => r.Message));
    }

    [Fact]
    public void Two_chairs_making_the_same_session_of_a_treatment_at_once_make_one_and_the_other_gets_the_same_refusal_as_a_late_one()
    {
        using var chairA = Open();
        using var chairB = Open();
        chairA.SaveHeadModel("sha-head", "head.ply", [1, 2, 3]);
        var t = chairA.CreateTreatment("C-0042", "crown", "{}", "sha-head", 3, "ana").Id;
        static TreatmentSessionLink Link(string treatment, int number, string dotId) =>
            new(treatment, number, TreatmentSessionKind.Session, new Dictionary<string, DotInScalp> { [dotId] = new(dotId, new Vec3(0, 0, 90)) });
        static List<PlannedDot> One(string dotId) => [new PlannedDot(0, dotId, 0, 0, 0, 0.8, 100, "p")];
        var first = chairA.CreateTreatmentSession("one", "{}", "sim", One("a1"), Link(t, 1, "a1")).Id;

        // Both chairs checked that session 2 is free before either wrote it; chair B commits first.
        string? winner = null;
        chairA.TreatmentSessionCheckedForTests = tx =>
        {
            chairA.TreatmentSessionCheckedForTests = null;
            if (IsPostgres)
            {
                winner = chairB.CreateTreatmentSession("two on B", "{}", "sim", One("b1"), Link(t, 2, "b1")).Id;
            }
            else
            {
                // SQLite has one writer at a time (chair B would wait for this transaction, then see the session taken):
                // the row appears in this transaction instead, past the check, as only a race could put it there.
                using var cmd = tx.Connection!.CreateCommand();
                cmd.Transaction = tx;
                cmd.CommandText = FormattableString.Invariant($"""
                    INSERT INTO sessions (id, plan_name, plan_json, profile_name, phase, reason, elapsed_s, kinematic_s, created_at, dot_count) VALUES ('s-raced', 'two', '{"{}"}', 'sim', 1, '', 0, 0, 0, 0);
                    INSERT INTO treatment_sessions (session_id, treatment_id, number, kind, created_at) VALUES ('s-raced', '{t}', 2, 1, 0);
                    """);
                cmd.ExecuteNonQuery();
            }
        };
        var refused = Assert.Throws<InvalidOperationException>(() => chairA.CreateTreatmentSession("two on A", "{}", "sim", One("a2"), Link(t, 2, "a2")));
        // The constraint refused it (not the check), in the check's words: what TreatmentManager refuses as FailedPrecondition.
        Assert.IsAssignableFrom<System.Data.Common.DbException>(refused.InnerException);
        Assert.Equal(winner is null ? $"treatment {t} already has session 2" : $"treatment {t} already has session 2 ({winner})", refused.Message);
        Assert.Equal(IsPostgres ? new[] { first, winner! } : new[] { first }, chairA.ListTreatmentSessions(t).Select(x => x.SessionId));
        Assert.DoesNotContain(chairA.ListSessions(), x => x.PlanName == "two on A");

        // A chair that comes late is refused by the check, with the same words; chair A can go on (nothing was left half done).
        var late = Assert.Throws<InvalidOperationException>(() => chairA.CreateTreatmentSession("one again", "{}", "sim", One("a3"), Link(t, 1, "a3")));
        Assert.Equal($"treatment {t} already has session 1 ({first})", late.Message);
        Assert.Null(late.InnerException);
        chairA.CreateTreatmentSession("three", "{}", "sim", One("a4"), Link(t, 3, "a4"));
    }
}

/// <summary>The ledger on its default backend, an SQLite file, with what only SQLite has (PRAGMAs, files of earlier controllers).</summary>
public sealed class SqliteLedgerStoreTests : LedgerStoreTests
{
    private protected override LedgerStore Open() => new(DbPath, _time);

    private protected override void ExecuteRaw(string sql)
    {
        using var c = new SqliteConnection($"Data Source={DbPath};Pooling=False");
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    [Fact]
    public void Pragmas_are_wal_full_and_foreign_keys()
    {
        using var store = Open();
        Assert.Equal("wal", store.ReadPragma("journal_mode"));
        Assert.Equal("2", store.ReadPragma("synchronous"));  // 2 = FULL
        Assert.Equal("1", store.ReadPragma("foreign_keys"));
        // WAL is persistent: another connection sees it too.
        using var other = new SqliteConnection($"Data Source={DbPath};Pooling=False");
        other.Open();
        using var cmd = other.CreateCommand();
        cmd.CommandText = "PRAGMA journal_mode";
        Assert.Equal("wal", cmd.ExecuteScalar());
        cmd.CommandText = "SELECT version FROM schema_version";
        Assert.Equal((long)LedgerStore.SchemaVersion, cmd.ExecuteScalar());
    }

    [Fact]
    public void A_newer_schema_is_refused()
    {
        using (Open())
        {
        }
        using (var c = new SqliteConnection($"Data Source={DbPath};Pooling=False"))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "INSERT INTO schema_version (version, applied_at) VALUES (99, 0)";
            cmd.ExecuteNonQuery();
        }
        var e = Assert.Throws<InvalidDataException>(Open);
        Assert.Contains("schema version 99", e.Message);
    }

    [Fact]
    public void A_version_2_ledger_is_brought_to_the_current_version_keeping_its_sessions_with_no_holds()
    {
        string id;
        using (var store = Open())
        {
            id = store.CreateSession("p", "{}", "sim", Dots(2)).Id;
        }
        // As an earlier controller left it: no hold columns, no surface registrations or their re-checks, version 2.
        using (var c = new SqliteConnection($"Data Source={DbPath};Pooling=False"))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = """
                DROP TABLE session_controllers;
                DROP INDEX audit_machine_by_kind;
                ALTER TABLE audit DROP COLUMN controller;
                DROP TABLE dot_matches;
                DROP TABLE dot_records;
                DROP TABLE treatment_sessions;
                DROP TABLE treatments;
                DROP TABLE call_audit;
                DROP TABLE users;
                DROP TABLE surface_checks;
                DROP TABLE surface_registrations;
                DROP TABLE head_models;
                ALTER TABLE sessions DROP COLUMN holds;
                ALTER TABLE sessions DROP COLUMN retracts;
                ALTER TABLE sessions DROP COLUMN last_hold_reason;
                DELETE FROM schema_version;
                INSERT INTO schema_version (version, applied_at) VALUES (1, 0), (2, 0);
                """;
            cmd.ExecuteNonQuery();
        }
        using (var store = Open())
        {
            Assert.Equal(HoldTally.None, store.FindSession(id)!.Holds);
            store.RecordHolds(id, new HoldTally(3, 1, "pose quality 0.05 < 0.5"));
        }
        using var reopened = Open();
        Assert.Equal(new HoldTally(3, 1, "pose quality 0.05 < 0.5"), reopened.FindSession(id)!.Holds);
        // 3 → 4 and 4 → 5 ran too: the surface registrations' and their re-checks' tables are there and work.
        var registration = reopened.SaveSurfaceRegistration(id, 1, "sha", "{}", 0.01, 0.02, 0.03, 12, 12, "[]", valid: true, "");
        Assert.Equal(registration, reopened.LatestSurfaceRegistration(id, 1));
        reopened.SaveSurfaceCheck(registration.Id, id, "d1", 0.02, ok: true, "within tolerance");
        Assert.Equal(registration, reopened.LatestSurfaceRegistration(id, 1));
        reopened.SaveSurfaceCheck(registration.Id, id, "d2", 0.4, ok: false, "the skin is 0.400 mm above the registered surface");
        Assert.Null(reopened.LatestSurfaceRegistration(id, 1));
        Assert.Equal("the skin is 0.400 mm above the registered surface", reopened.FindSurfaceRegistration(registration.Id)!.WithdrawnBecause);
        Assert.Equal([true, false], reopened.ListSurfaceChecks(id).Select(k => k.Ok));
        Assert.Equal(2, reopened.Tally(id).Total);
        Assert.Throws<KeyNotFoundException>(() => reopened.RecordHolds("s-none", HoldTally.None));
        Assert.Throws<ArgumentOutOfRangeException>(() => reopened.RecordHolds(id, new HoldTally(-1, 0, "")));
    }

    [Fact]
    public void A_version_4_ledger_gains_the_surface_re_checks_and_keeps_its_registrations()
    {
        string id, registrationId;
        using (var store = Open())
        {
            id = store.CreateSession("p", "{}", "sim", Dots(2)).Id;
            registrationId = store.SaveSurfaceRegistration(id, 1, "sha", "{}", 0.01, 0.02, 0.03, 12, 12, "[]", valid: true, "").Id;
        }
        using (var c = new SqliteConnection($"Data Source={DbPath};Pooling=False"))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "DROP TABLE session_controllers; DROP INDEX audit_machine_by_kind; ALTER TABLE audit DROP COLUMN controller; DROP TABLE dot_matches; DROP TABLE dot_records; DROP TABLE treatment_sessions; DROP TABLE treatments; DROP TABLE call_audit; DROP TABLE users; DROP TABLE surface_checks; ALTER TABLE surface_registrations DROP COLUMN height_map_json; UPDATE schema_version SET version = 4;";
            cmd.ExecuteNonQuery();
        }
        using var reopened = Open();
        Assert.Equal(registrationId, reopened.LatestSurfaceRegistration(id, 1)!.Id);
        reopened.SaveSurfaceCheck(registrationId, id, "d1", double.NaN, ok: false, "the re-check's surface probe 1: ALARM:5");
        Assert.Null(reopened.LatestSurfaceRegistration(id, 1));
        Assert.True(double.IsNaN(Assert.Single(reopened.ListSurfaceChecks(id)).DeviationMm));
    }
}

/// <summary>The ledger on PostgreSQL: a database of its own on the test run's private cluster.</summary>
#pragma warning disable CA1515 // xunit finds public classes only; its facts are inherited
public sealed class PostgresLedgerStoreTests : LedgerStoreTests
{
    private readonly StoreLocation _location = PostgresCluster.Shared.CreateDatabase();

    private protected override LedgerStore Open() => new(_location, _time);

    private protected override void ExecuteRaw(string sql)
    {
        using var c = PostgresCluster.Connect(_location);
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    private protected override bool IsPostgres => true;
}
#pragma warning restore CA1515
