using System.Data.Common;
using Google.Protobuf;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Sessions;
using SmpRobot.Controller.Storage;
using SmpRobot.Tests.Integration;
using SmpRobot.Tests.Storage;
using SmpRobot.Treatment.Reports;

namespace SmpRobot.Tests.Sessions;

/// <summary>
/// A report's e-stops and resets are those of the session's own window on the chairs that ran it, selected by the
/// store: however old the session (however many machine rows came after it), and never another chair's on a shared
/// PostgreSQL store.
/// </summary>
[Collection(ControllerCollection.Name)]
public sealed class ReportEmergencyStopTests
{
    private static readonly string DesignPath = Path.Combine(TestProfiles.RepoRoot, "hardware", "designs", "demo-crown.design.json");
    private static readonly string MeshPath = Path.Combine(TestProfiles.RepoRoot, "hardware", "heads", "adult-synthetic.ply");

    /// <summary>Machine rows written after the session: more than the newest 10,000 an earlier report looked among.</summary>
    private const int LaterMachineRows = 10_001;

    [Fact]
    public async Task An_old_sessions_e_stops_are_in_its_reports_however_many_machine_rows_came_after()
    {
        await using var c = await ControllerFixture.StartAsync();
        var ledger = c.Services.GetRequiredService<LedgerStore>();
        var (treatmentId, sessionId) = await StartTreatmentAsync(c);
        var t0 = RunWithStops(ledger, sessionId, "chair A");

        await using (var file = new SqliteConnection($"Data Source={Path.Combine(c.DataDirectory, "smp.db")};Pooling=False"))
        {
            await file.OpenAsync();
            await AddLaterMachineRowsAsync(file, t0, ledger.ControllerId);
        }

        AssertReportsShowOnly(c, treatmentId, sessionId, "chair A");
    }

    [Fact]
    public async Task On_a_shared_store_a_sessions_reports_show_the_e_stops_of_the_chair_that_ran_it_only()
    {
        var location = PostgresCluster.Shared.CreateDatabase();
        await using var c = await ControllerFixture.StartAsync(configure: o => o with { Store = location });
        var ledger = c.Services.GetRequiredService<LedgerStore>();
        var (treatmentId, sessionId) = await StartTreatmentAsync(c);

        // Chair B, another controller on the same store, runs a session of its own at the same time and is e-stopped too.
        using var chairB = new LedgerStore(location, TimeProvider.System);
        var other = chairB.CreateSession("chair B's plan", "{}", "sim", [new PlannedDot(0, "b1", 0, 0, 0, 0.8, 100, "p")]).Id;
        var t0 = DateTimeOffset.MinValue;
        RunWithStops(chairB, other, "chair B", started: () => t0 = RunWithStops(ledger, sessionId, "chair A"));
        AssertReportsShowOnly(c, treatmentId, sessionId, "chair A");

        // And still once the machine rows of all the chairs since have outgrown any window of the newest.
        await using (var server = PostgresCluster.Connect(location))
        {
            await AddLaterMachineRowsAsync(server, t0, ledger.ControllerId);
        }

        AssertReportsShowOnly(c, treatmentId, sessionId, "chair A");
        // Chair B's session, reported by chair A's controller: chair B's stop, not chair A's.
        var timeline = c.Services.GetRequiredService<SessionReports>().SessionData(other).Timeline;
        Assert.Equal(["e-stop by chair B", "reset by chair B"], timeline.Where(e => e.Kind is TimelineEventKind.EmergencyStop or TimelineEventKind.Reset).Select(e => e.Reason));
    }

    /// <summary>
    /// Runs <paramref name="sessionId"/> on <paramref name="chair"/> (as a run's start and end write it), with an e-stop and
    /// its reset during the run, an e-stop before and one after it; <paramref name="started"/> runs while it is under way.
    /// Returns the run's start. The rows' times are given, a minute apart, after the run's start on the wall clock.
    /// </summary>
    private static DateTimeOffset RunWithStops(LedgerStore chair, string sessionId, string name, Action? started = null)
    {
        var t0 = TimeProvider.System.GetUtcNow();
        chair.Audit(null, "estop", $"e-stop by {name} before the run", t0.AddMinutes(-1));
        chair.UpdateSession(sessionId, SessionPhase.Running, "", 0, 0, t0, null);
        chair.Audit(sessionId, "started", $"session started on {name}", t0);
        started?.Invoke();
        chair.Audit(null, "estop", $"e-stop by {name}", t0.AddMinutes(1));
        chair.Audit(null, "homed", "homing cycle completed", t0.AddMinutes(2));
        chair.Audit(null, "estop-reset", $"reset by {name}", t0.AddMinutes(3));
        chair.UpdateSession(sessionId, SessionPhase.Completed, "", 1, 1, t0, t0.AddMinutes(4));
        chair.Audit(sessionId, "completed", "COMPLETED", t0.AddMinutes(4));
        chair.Audit(null, "estop", $"e-stop by {name} after the run", t0.AddMinutes(5));
        return t0;
    }

    [Fact]
    public async Task A_paused_sessions_reports_count_the_e_stops_of_its_runs_only_each_once_with_its_reset()
    {
        await using var c = await ControllerFixture.StartAsync();
        var ledger = c.Services.GetRequiredService<LedgerStore>();
        var (treatmentId, sessionId) = await StartTreatmentAsync(c);
        var t0 = TimeProvider.System.GetUtcNow();
        ledger.UpdateSession(sessionId, SessionPhase.Running, "", 0, 0, t0, null);
        // Run 1 ends in an e-stop whose stop sequence was incomplete; the operator resets it afterwards.
        ledger.Audit(sessionId, "started", "session started", t0);
        ledger.Audit(null, "estop", "e-stop in run 1", t0.AddMinutes(1));
        ledger.Audit(null, "estop", SmpRobot.Controller.Safety.SafetySupervisor.IncompleteStopPrefix + "the link is down", t0.AddMinutes(1));
        ledger.Audit(sessionId, "emergency_stopped", "emergency stop from test", t0.AddMinutes(1.5));
        ledger.Audit(null, "estop-reset", "reset after run 1", t0.AddMinutes(2));
        // Between its runs the chair is e-stopped for something else: not this session's.
        ledger.Audit(null, "estop", "e-stop while the session stood", t0.AddMinutes(3));
        ledger.Audit(null, "estop-reset", "reset while the session stood", t0.AddMinutes(4));
        // Run 2: a motion hold's own "resumed" inside it opens nothing; it pauses; later e-stops of the chair are not this session's.
        ledger.Audit(sessionId, "resumed", "session resumed", t0.AddMinutes(5));
        ledger.Audit(sessionId, "resumed", "tracking settled; going on", t0.AddMinutes(5.5));
        ledger.Audit(sessionId, "paused", "paused by the operator", t0.AddMinutes(6));
        ledger.Audit(null, "estop", "e-stop after the pause", t0.AddMinutes(7));
        ledger.UpdateSession(sessionId, SessionPhase.Paused, "paused by the operator", 1, 1, t0, null);

        // Reported ten minutes on, after all of it (the rows are dated ahead of the wall clock).
        var reports = new SessionReports(ledger, c.Services.GetRequiredService<TreatmentManager>(), new FakeTimeProvider(t0.AddMinutes(10)));
        var stops = reports.SessionData(sessionId).Timeline.Where(e => e.Kind is TimelineEventKind.EmergencyStop or TimelineEventKind.Reset).ToList();
        Assert.Equal(["e-stop in run 1; " + SmpRobot.Controller.Safety.SafetySupervisor.IncompleteStopPrefix + "the link is down", "reset after run 1"], stops.Select(e => e.Reason));
        Assert.Equal(1, Assert.Single(reports.TreatmentData(treatmentId).Sessions).EmergencyStops);
        Assert.Equal([(t0, t0.AddMinutes(1.5)), (t0.AddMinutes(5), t0.AddMinutes(6))], SessionReports.Runs(ledger.ReadAudit(sessionId), DateTimeOffset.MaxValue).ToList());
    }

    private static async Task AddLaterMachineRowsAsync(DbConnection connection, DateTimeOffset t0, string controller)
    {
        await using var tx = await connection.BeginTransactionAsync();
        await using var insert = connection.CreateCommand();
        insert.Transaction = tx;
        insert.CommandText = "INSERT INTO audit (at, session_id, kind, message, controller) VALUES (@at, NULL, 'homed', 'homing cycle completed', @c)";
        var at = insert.CreateParameter();
        at.ParameterName = "@at";
        insert.Parameters.Add(at);
        var c = insert.CreateParameter();
        c.ParameterName = "@c";
        c.Value = controller;
        insert.Parameters.Add(c);
        for (var i = 0; i < LaterMachineRows; i++)
        {
            at.Value = t0.AddMinutes(10).AddMilliseconds(i).UtcTicks;
            await insert.ExecuteNonQueryAsync();
        }
        await tx.CommitAsync();
    }

    private static void AssertReportsShowOnly(ControllerFixture c, string treatmentId, string sessionId, string chair)
    {
        var reports = c.Services.GetRequiredService<SessionReports>();
        var stops = reports.SessionData(sessionId).Timeline.Where(e => e.Kind is TimelineEventKind.EmergencyStop or TimelineEventKind.Reset).ToList();
        Assert.Equal([$"e-stop by {chair}", $"reset by {chair}"], stops.Select(e => e.Reason));
        Assert.Equal([TimelineEventKind.EmergencyStop, TimelineEventKind.Reset], stops.Select(e => e.Kind));
        Assert.Equal(1, Assert.Single(reports.TreatmentData(treatmentId).Sessions).EmergencyStops);
    }

    private static async Task<(string TreatmentId, string SessionId)> StartTreatmentAsync(ControllerFixture c)
    {
        var treatments = new TreatmentService.TreatmentServiceClient(c.Channel);
        var info = await treatments.StartTreatmentAsync(new StartTreatmentRequest
        {
            ClientId = "C-0042",
            DesignJson = await File.ReadAllTextAsync(DesignPath),
            HeadModel = ByteString.CopyFrom(await File.ReadAllBytesAsync(MeshPath)),
            HeadModelFile = "adult-synthetic.ply",
        }, deadline: DateTime.UtcNow.AddMinutes(2));
        return (info.Id, info.Sessions[0].Session.Id);
    }
}
