using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Plans;
using SmpRobot.Geometry;
using SmpRobot.Vision;

namespace SmpRobot.Tests.Integration;

/// <summary>The automatic holds a session had are counted over the whole session: a resume and a restart keep them.</summary>
[Collection(ControllerCollection.Name)]
public class HoldTallyTests
{
    private static readonly CalibrationOverride NoCalibration = new() { Reason = "test: a still test head, no camera", Operator = "test" };

    /// <summary>A tracked head that never moves; its pose quality is set by the test, so a poor pose holds the session.</summary>
    private sealed class AdjustableHead(RigidTransform gantryFromHead, TimeProvider clock) : IHeadPoseSource
    {
        private double _quality = 1;

        public double Quality { get => Volatile.Read(ref _quality); set => Volatile.Write(ref _quality, value); }

        public string Description => "tracked:test-adjustable";
        public bool IsTracking => true;
        public TimeProvider Clock => clock;
        public HeadPoseSample? Latest(TimeSpan lookAhead = default) => new(gantryFromHead, clock.GetTimestamp(), Quality, 0.0);
        public event EventHandler? PoseUpdated { add { } remove { } }
    }

    [Fact]
    public async Task Holds_of_earlier_runs_survive_a_pause_and_resume_and_a_controller_restart()
    {
        AdjustableHead? head = null;
        IHeadPoseSource Factory(IServiceProvider _) => head = new AdjustableHead(ControllerFixture.Profile.FixedHead.ToTransform(), TimeProvider.System);
        var plan = DemoPlanGenerator.Generate(30, seed: 8);
        string sessionId, data;
        int holdsBefore;
        Controller.Gantry.Simulation.SimulatedGantry simulator;
        await using (var c = await ControllerFixture.StartAsync(timeScale: 20, headPose: Factory))
        {
            data = c.DataDirectory;
            simulator = c.Simulator;
            await c.HomeAsync();
            await c.StartHeartbeatAsync();
            sessionId = (await c.Sessions.CreateSessionAsync(new CreateSessionRequest { Plan = plan })).Id;
            await c.Sessions.StartAsync(new SessionRef { SessionId = sessionId, CalibrationOverride = NoCalibration });
            await c.WaitForAsync(sessionId, s => s.Dots.Placed >= 3);

            // A poor pose holds the session; a good one lets it go on by itself.
            head!.Quality = 0.05;
            await c.WaitForAsync(sessionId, s => s.Tracking.Holding);
            head.Quality = 1;
            var afterHold = await c.WaitForAsync(sessionId, s => !s.Tracking.Holding && s.State == SessionState.Running);
            Assert.True(afterHold.Tracking.Holds >= 1);

            await c.Sessions.PauseAsync(new SessionRef { SessionId = sessionId });
            var paused = await c.WaitForAsync(sessionId, s => s.State == SessionState.Paused);
            holdsBefore = paused.Tracking.Holds;
            Assert.True(holdsBefore >= 1, "the paused session forgot its holds");
            Assert.Contains("quality", paused.Tracking.LastHoldReason, StringComparison.OrdinalIgnoreCase);

            await c.Sessions.ResumeAsync(new SessionRef { SessionId = sessionId, CalibrationOverride = NoCalibration });
            var resumed = await c.Sessions.GetAsync(new SessionRef { SessionId = sessionId });
            Assert.Equal(SessionState.Running, resumed.State);
            Assert.True(resumed.Tracking.Holds >= holdsBefore, $"the resumed run counts {resumed.Tracking.Holds} holds, {holdsBefore} before it");
            await c.Sessions.PauseAsync(new SessionRef { SessionId = sessionId });
            holdsBefore = (await c.WaitForAsync(sessionId, s => s.State == SessionState.Paused)).Tracking.Holds;
            await c.StopAsync();
        }

        // The tally is in the ledger: a new controller on the same data folder shows it.
        await using var second = await ControllerFixture.StartAsync(simulator, data, timeScale: 20, headPose: Factory);
        var recovered = await second.Sessions.GetAsync(new SessionRef { SessionId = sessionId });
        Assert.Equal(holdsBefore, recovered.Tracking.Holds);
        Assert.Contains("quality", recovered.Tracking.LastHoldReason, StringComparison.OrdinalIgnoreCase);
    }
}
