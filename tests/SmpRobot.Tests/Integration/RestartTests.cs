using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Plans;
using SmpRobot.Controller.Storage;

namespace SmpRobot.Tests.Integration;

[Collection(ControllerCollection.Name)]
public class RestartTests
{
    private static readonly SmpRobot.Machine.MachineProfile Profile = ControllerFixture.Profile;

    [Fact]
    public async Task Restart_recovery_runs_once_at_start_up_and_building_the_controller_writes_nothing()
    {
        var data = Directory.CreateTempSubdirectory("smp-recover-").FullName;
        string id;
        using (var ledger = new LedgerStore(Path.Combine(data, "smp.db"), TimeProvider.System))
        {
            // As a controller killed mid-dot left it: RUNNING, one dot commanded.
            id = ledger.CreateSession("p", "{}", "sim", [new PlannedDot(0, "d1", 1, 2, 0, 1.0, 200, "p1"), new PlannedDot(1, "d2", 3, 4, 0, 1.0, 200, "p1")]).Id;
            ledger.UpdateSession(id, SessionPhase.Running, "", 1, 1, DateTimeOffset.UtcNow, null);
            ledger.MarkCommanded(id, 0, new SmpRobot.Geometry.Vec3(1, 2, 0));
        }
        var app = Controller.ControllerHost.Build(new Controller.ControllerOptions
        {
            ProfilePath = Path.Combine(TestProfiles.RepoRoot, "hardware", "profiles", "sim.json"),
            DataDirectory = data,
            Urls = "http://127.0.0.1:0",
            Simulator = new Controller.Gantry.Simulation.SimulatedGantry(Profile, TimeProvider.System),
            MinimumLogLevel = LogLevel.Warning,
        });
        await using (app)
        {
            var sessions = app.Services.GetRequiredService<Controller.Sessions.SessionManager>();
            var store = app.Services.GetRequiredService<LedgerStore>();
            Assert.Equal(SessionPhase.Running, store.FindSession(id)!.Phase); // built, not started: nothing written

            await app.StartAsync().WaitAsync(TimeSpan.FromSeconds(30));
            var recovered = store.FindSession(id)!;
            Assert.Equal(SessionPhase.Faulted, recovered.Phase);
            Assert.Contains("1 dot(s) that were being placed are in doubt", recovered.Reason, StringComparison.Ordinal);
            Assert.Equal(1, store.Tally(id).InDoubt);
            Assert.Empty(sessions.RecoverAfterRestart()); // once only
            await app.StopAsync().WaitAsync(TimeSpan.FromSeconds(30));
        }
        Directory.Delete(data, recursive: true);
    }

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
