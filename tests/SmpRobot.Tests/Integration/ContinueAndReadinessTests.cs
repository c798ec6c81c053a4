using Grpc.Core;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Plans;

namespace SmpRobot.Tests.Integration;

[Collection(ControllerCollection.Name)]
public class ContinueAndReadinessTests
{
    [Fact]
    public async Task A_stopped_sessions_remaining_dots_continue_in_a_new_session_and_each_dot_is_placed_once()
    {
        await using var c = await ControllerFixture.StartAsync(timeScale: 50);
        await c.HomeAsync();
        await c.StartHeartbeatAsync();
        var plan = DemoPlanGenerator.Generate(60, seed: 8);
        var first = await c.Sessions.CreateSessionAsync(new CreateSessionRequest { Plan = plan });
        await c.Sessions.StartAsync(new SessionRef { SessionId = first.Id });
        await c.WaitForAsync(first.Id, s => s.Dots.Placed >= 10);
        var running = await Assert.ThrowsAsync<RpcException>(() => c.Sessions.ContinueInNewSessionAsync(new SessionRef { SessionId = first.Id }).ResponseAsync);
        Assert.Contains("is running", running.Status.Detail);
        await c.Sessions.PauseAsync(new SessionRef { SessionId = first.Id });
        var paused = await c.WaitForAsync(first.Id, s => s.State == SessionState.Paused);

        var second = await c.Sessions.ContinueInNewSessionAsync(new SessionRef { SessionId = first.Id });
        Assert.Equal(SessionState.Created, second.State);
        Assert.Equal(paused.Dots.Pending, second.Dots.Total);
        var old = await c.Sessions.GetAsync(new SessionRef { SessionId = first.Id });
        Assert.Equal(SessionState.Aborted, old.State);
        Assert.Contains($"continue in session {second.Id}", old.Reason);
        Assert.Equal(paused.Dots.Placed, old.Dots.Placed);
        var again = await Assert.ThrowsAsync<RpcException>(() => c.Sessions.ContinueInNewSessionAsync(new SessionRef { SessionId = second.Id + "x" }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, again.StatusCode);

        await c.Sessions.StartAsync(new SessionRef { SessionId = second.Id });
        var done = await c.WaitForAsync(second.Id, ControllerFixture.IsFinished);
        Assert.Equal(SessionState.Completed, done.State);
        Assert.Equal(plan.Dots.Count, old.Dots.Placed + done.Dots.Placed);
        Assert.All(MotionTruth.PlacementsPerDot(plan, ControllerFixture.Profile, c.Simulator.MotionRecord), p => Assert.True(p.Value == 1, $"dot {p.Key} was placed {p.Value} times"));
        var nothingLeft = await Assert.ThrowsAsync<RpcException>(() => c.Sessions.ContinueInNewSessionAsync(new SessionRef { SessionId = second.Id }).ResponseAsync);
        Assert.Contains("COMPLETED", nothingLeft.Status.Detail);
    }

    [Fact]
    public async Task Readiness_lists_every_refusal_with_its_fix_before_anything_moves_or_is_created()
    {
        await using var c = await ControllerFixture.StartAsync();
        var notHomed = await c.Sessions.CheckStartAsync(new CheckStartRequest());
        Assert.False(notHomed.Ready);
        Assert.True(notHomed.NeedsHoming);
        Assert.Empty(notHomed.Refusals);

        await c.HomeAsync();
        Assert.True((await c.Sessions.CheckStartAsync(new CheckStartRequest())).Ready);
        var sessions = (await c.Sessions.ListAsync(new ListSessionsRequest())).Sessions.Count;

        await c.Safety.EmergencyStopAsync(new EmergencyStopRequest { Source = "test" });
        var latched = await c.Sessions.CheckStartAsync(new CheckStartRequest { ConsoleId = "console-nobody" });
        Assert.False(latched.Ready);
        Assert.Contains(latched.Refusals, r => r.Contains("smp estop --reset", StringComparison.Ordinal));
        Assert.Contains(latched.Refusals, r => r.Contains("console console-nobody is not connected", StringComparison.Ordinal));
        // Asking changed nothing.
        Assert.Equal(sessions, (await c.Sessions.ListAsync(new ListSessionsRequest())).Sessions.Count);
        Assert.True((await c.Safety.GetSafetyStatusAsync(new GetSafetyStatusRequest())).EstopLatched);
    }
}
