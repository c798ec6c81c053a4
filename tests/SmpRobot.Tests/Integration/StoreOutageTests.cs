using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Plans;
using SmpRobot.Controller.Safety;
using SmpRobot.Controller.Sessions;
using SmpRobot.Controller.Storage;
using SmpRobot.Tests.Storage;

namespace SmpRobot.Tests.Integration;

/// <summary>
/// Issue #14: a PostgreSQL record store that goes away mid-session (its server restarts). The session holds at the
/// hover point with the store's reason, the operator heartbeat and the e-stop do not depend on the store, reads say
/// UNAVAILABLE with the store's message, and once the server is back every dot was placed exactly once.
/// </summary>
[Collection(ControllerCollection.Name)]
public class StoreOutageTests
{
    private const string StoreReason = "record store unreachable: ";

    [Fact]
    public async Task A_postgresql_restart_mid_session_holds_then_goes_on_and_every_dot_is_placed_exactly_once()
    {
        using var cluster = PostgresCluster.StartPrivate();
        var location = cluster.CreateDatabase();
        var plan = DemoPlanGenerator.Generate(60, seed: 14);
        await using var controller = await ControllerFixture.StartAsync(timeScale: 50, configure: o => o with { Store = location });
        await controller.HomeAsync();
        await controller.StartHeartbeatAsync();
        var id = (await controller.Sessions.CreateSessionAsync(new CreateSessionRequest { Plan = plan })).Id;
        await controller.Sessions.StartAsync(new SessionRef { SessionId = id });
        await controller.WaitForAsync(id, s => s.Dots.Placed >= 8);
        using var watchBound = new CancellationTokenSource(ControllerFixture.Timeout);
        using var watch = controller.Sessions.Watch(new WatchSessionRequest { SessionId = id }, cancellationToken: watchBound.Token);
        Assert.True(await watch.ResponseStream.MoveNext(watchBound.Token));

        cluster.Stop(); // the server restarts: every connection is cut
        var sessions = controller.Services.GetRequiredService<SessionManager>();
        var presence = controller.Services.GetRequiredService<OperatorPresence>();
        // Held long enough for several retries of the store (every 500 ms), with the store's reason.
        await UntilAsync(() => sessions.Tracking() is { Holding: true, HoldSeconds: >= 1.5 } t && t.HoldReason.StartsWith(StoreReason, StringComparison.Ordinal), "the session to hold for the store for 1.5 s");
        var placedInHold = MotionTruth.PlacementsPerDot(plan, ControllerFixture.Profile, controller.Simulator.MotionRecord);
        await UntilAsync(() => sessions.Tracking().HoldSeconds >= 3, "the hold to last 3 s");
        // Nothing plunged while the store could not record; the operator's heartbeat was never cut by the outage.
        Assert.Equal(placedInHold, MotionTruth.PlacementsPerDot(plan, ControllerFixture.Profile, controller.Simulator.MotionRecord));
        Assert.StartsWith(StoreReason, sessions.Tracking().HoldReason, StringComparison.Ordinal);
        Assert.True(presence.AnyPresent, "the operator heartbeat stream must stay open through a store outage");
        Assert.Equal("Idle", controller.Simulator.State);

        // Reads that need the store say so: UNAVAILABLE with the store's message, never an internal error; the watch
        // ends the same way rather than go quiet on a state it can no longer read.
        var watchEnd = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            while (await watch.ResponseStream.MoveNext(watchBound.Token))
            {
            }
        });
        AssertStoreUnavailable(watchEnd);
        AssertStoreUnavailable(await Assert.ThrowsAsync<RpcException>(async () => await controller.Sessions.GetAsync(new SessionRef { SessionId = id }, deadline: DateTime.UtcNow.Add(ControllerFixture.Timeout))));
        AssertStoreUnavailable(await Assert.ThrowsAsync<RpcException>(async () => await controller.Sessions.ListAsync(new ListSessionsRequest(), deadline: DateTime.UtcNow.Add(ControllerFixture.Timeout))));

        cluster.Start();
        // It goes on by itself once the store answers (the hold was automatic, not the operator's).
        var done = await controller.WaitForAsync(id, ControllerFixture.IsFinished);
        Assert.Equal(SessionState.Completed, done.State);
        Assert.Equal((60, 60, 0), (done.Dots.Total, done.Dots.Placed, done.Dots.InDoubt));
        Assert.True(done.Tracking.Holds >= 1);
        var placements = MotionTruth.PlacementsPerDot(plan, ControllerFixture.Profile, controller.Simulator.MotionRecord);
        Assert.All(placements, p => Assert.True(p.Value == 1, $"dot {p.Key} was placed {p.Value} times"));
        var ledger = controller.Services.GetRequiredService<LedgerStore>();
        Assert.All(ledger.LoadDots(id), d => Assert.Equal(DotLedgerState.Placed, d.State));
        var audit = ledger.ReadAudit(id);
        Assert.Contains(audit, a => a.Kind == "resumed" && a.Message.Contains("record store answers again", StringComparison.Ordinal) && a.Message.Contains(StoreReason, StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_e_stop_works_and_is_not_reported_failed_while_the_postgresql_store_is_unreachable_and_every_dot_is_known_after()
    {
        using var cluster = PostgresCluster.StartPrivate();
        var location = cluster.CreateDatabase();
        var plan = DemoPlanGenerator.Generate(40, seed: 15);
        await using var controller = await ControllerFixture.StartAsync(timeScale: 50, configure: o => o with { Store = location });
        await controller.HomeAsync();
        await controller.StartHeartbeatAsync();
        var id = (await controller.Sessions.CreateSessionAsync(new CreateSessionRequest { Plan = plan })).Id;
        await controller.Sessions.StartAsync(new SessionRef { SessionId = id });
        await controller.WaitForAsync(id, s => s.Dots.Placed >= 5);

        cluster.Stop();
        var sessions = controller.Services.GetRequiredService<SessionManager>();
        await UntilAsync(() => sessions.Tracking().HoldReason.StartsWith(StoreReason, StringComparison.Ordinal), "the session to hold for the store");

        var status = await controller.Safety.EmergencyStopAsync(new EmergencyStopRequest { Source = "test", Reason = "store outage" }, deadline: DateTime.UtcNow.Add(ControllerFixture.Timeout));
        Assert.True(status.EstopLatched);
        Assert.Equal("", status.StopError);
        Assert.True((await controller.Safety.GetSafetyStatusAsync(new GetSafetyStatusRequest(), deadline: DateTime.UtcNow.Add(ControllerFixture.Timeout))).EstopLatched);
        Assert.False(controller.Simulator.SpindleOn);

        cluster.Start();
        var stopped = await controller.WaitForAsync(id, ControllerFixture.IsFinished);
        Assert.Equal(SessionState.EmergencyStopped, stopped.State);
        // Every dot is known: what the ledger calls placed is what the needle placed, once; nothing else moved.
        var placements = MotionTruth.PlacementsPerDot(plan, ControllerFixture.Profile, controller.Simulator.MotionRecord);
        Assert.All(placements, p => Assert.True(p.Value <= 1, $"dot {p.Key} was placed {p.Value} times"));
        var ledger = controller.Services.GetRequiredService<LedgerStore>().LoadDots(id);
        var placedInLedger = ledger.Where(d => d.State == DotLedgerState.Placed).Select(d => d.Dot.DotId).Order(StringComparer.Ordinal).ToList();
        var placedByNeedle = placements.Where(p => p.Value == 1).Select(p => p.Key).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(placedByNeedle, placedInLedger);
        Assert.Equal(0, stopped.Dots.InDoubt);
        Assert.Equal(placedByNeedle.Count, stopped.Dots.Placed);
    }

    [Fact]
    public async Task An_intent_whose_commit_landed_unseen_then_a_stop_before_the_store_answers_leaves_that_dot_pending_never_commanded()
    {
        var plan = DemoPlanGenerator.Generate(30, seed: 16);
        await using var controller = await ControllerFixture.StartAsync(timeScale: 50);
        await controller.HomeAsync();
        await controller.StartHeartbeatAsync();
        var id = (await controller.Sessions.CreateSessionAsync(new CreateSessionRequest { Plan = plan })).Id;
        await controller.Sessions.StartAsync(new SessionRef { SessionId = id });
        await controller.WaitForAsync(id, s => s.Dots.Placed >= 5);

        // The next intent's commit lands, and the connection is cut before its answer: the controller sees a store
        // that went away during the write, and the store stays away.
        var ledger = controller.Services.GetRequiredService<LedgerStore>();
        var cut = 0; // 0: not yet, 1: away, 2: back
        ledger.UnreachableForTests = () => Volatile.Read(ref cut) == 1;
        ledger.TransitionCommittedForTests = to =>
        {
            if (to == DotLedgerState.Commanded && Interlocked.CompareExchange(ref cut, 1, 0) == 0)
            {
                throw new StoreUnavailableException("the test's store", new TimeoutException("the connection was cut during the commit"));
            }
        };
        var sessions = controller.Services.GetRequiredService<SessionManager>();
        await UntilAsync(() => sessions.Tracking().HoldReason.StartsWith(StoreReason, StringComparison.Ordinal), "the session to hold for the store");

        // The operator stops before the store answers: the run ends with the store still away.
        var status = await controller.Safety.EmergencyStopAsync(new EmergencyStopRequest { Source = "test", Reason = "intent cut off" }, deadline: DateTime.UtcNow.Add(ControllerFixture.Timeout));
        Assert.Equal("", status.StopError);
        await sessions.WaitIdleAsync(ControllerFixture.Timeout);
        Assert.Equal(1, Volatile.Read(ref cut));

        Volatile.Write(ref cut, 2);
        var stopped = await controller.WaitForAsync(id, ControllerFixture.IsFinished);
        Assert.Equal(SessionState.EmergencyStopped, stopped.State);
        // The dot whose intent landed unseen never had a plunge line: it is Pending again, and says why; no dot is left
        // Commanded, none in doubt, and the store's Placed dots are exactly the needle's.
        var dots = ledger.LoadDots(id);
        Assert.DoesNotContain(dots, d => d.State is DotLedgerState.Commanded or DotLedgerState.InDoubt);
        var withdrawn = Assert.Single(ledger.ReadAudit(id), a => a.Kind == "intent-withdrawn");
        Assert.Contains("no plunge line was written", withdrawn.Message, StringComparison.Ordinal);
        var placements = MotionTruth.PlacementsPerDot(plan, ControllerFixture.Profile, controller.Simulator.MotionRecord);
        Assert.All(placements, p => Assert.True(p.Value <= 1, $"dot {p.Key} was placed {p.Value} times"));
        Assert.Equal(placements.Where(p => p.Value == 1).Select(p => p.Key).Order(StringComparer.Ordinal), dots.Where(d => d.State == DotLedgerState.Placed).Select(d => d.Dot.DotId).Order(StringComparer.Ordinal));
        Assert.Equal(0, stopped.Dots.Commanded);
    }

    private static void AssertStoreUnavailable(RpcException e)
    {
        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
        Assert.StartsWith(StoreReason, e.Status.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", e.Status.Detail, StringComparison.Ordinal);
    }

    /// <summary>Polls an in-process condition (no event announces a hold's age), bounded by <see cref="ControllerFixture.Timeout"/>.</summary>
    private static async Task UntilAsync(Func<bool> condition, string what)
    {
        using var bound = new CancellationTokenSource(ControllerFixture.Timeout);
        using var tick = new PeriodicTimer(TimeSpan.FromMilliseconds(20));
        while (!condition())
        {
            try
            {
                await tick.WaitForNextTickAsync(bound.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"waited {ControllerFixture.Timeout.TotalSeconds} s for {what}");
            }
        }
    }
}
