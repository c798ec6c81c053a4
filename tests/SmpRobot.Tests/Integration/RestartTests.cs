using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Plans;

namespace SmpRobot.Tests.Integration;

[Collection(ControllerCollection.Name)]
public class RestartTests
{
    private static readonly SmpRobot.Machine.MachineProfile Profile = ControllerFixture.Profile;

    [Fact]
    public async Task A_controller_restart_mid_session_never_places_a_dot_twice()
    {
        var plan = DemoPlanGenerator.Generate(120, seed: 21);
        string sessionId;
        Controller.Gantry.Simulation.SimulatedGantry simulator;
        string data;
        await using (var first = await ControllerFixture.StartAsync(timeScale: 50))
        {
            simulator = first.Simulator;
            data = first.DataDirectory;
            await first.HomeAsync();
            await first.StartHeartbeatAsync();
            sessionId = (await first.Sessions.CreateSessionAsync(new CreateSessionRequest { Plan = plan })).Id;
            await first.Sessions.StartAsync(new SessionRef { SessionId = sessionId });
            await first.WaitForAsync(sessionId, s => s.Dots.Placed >= 15);
            await first.StopAsync(); // as on SIGTERM, mid-session
        }

        // Same gantry, same ledger, new controller: it reconnects (the board resets) and must re-home.
        await using var second = await ControllerFixture.StartAsync(simulator, data);
        var recovered = await second.Sessions.GetAsync(new SessionRef { SessionId = sessionId });
        Assert.Contains(recovered.State, new[] { SessionState.Paused, SessionState.Faulted });
        Assert.Equal(recovered.Dots.Total, recovered.Dots.Placed + recovered.Dots.Pending + recovered.Dots.InDoubt);
        Assert.Equal(recovered.Dots.Placed, MotionTruth.PlacementsPerDot(plan, Profile, simulator.MotionRecord).Values.Sum());
        Assert.False((await second.Machine.GetStatusAsync(new GetMachineStatusRequest())).Homed);

        await second.HomeAsync();
        await second.StartHeartbeatAsync();
        await second.Sessions.ResumeAsync(new SessionRef { SessionId = sessionId });
        var done = await second.WaitForAsync(sessionId, ControllerFixture.IsFinished);
        Assert.Equal(SessionState.Completed, done.State);
        Assert.All(MotionTruth.PlacementsPerDot(plan, Profile, simulator.MotionRecord), p => Assert.True(p.Value == 1, $"dot {p.Key} was placed {p.Value} times"));
    }
}
