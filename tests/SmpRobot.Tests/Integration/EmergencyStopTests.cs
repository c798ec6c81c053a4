using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Gantry.Simulation;
using SmpRobot.Controller.Plans;

namespace SmpRobot.Tests.Integration;

[Collection(ControllerCollection.Name)]
public class EmergencyStopTests
{
    private static readonly SmpRobot.Machine.MachineProfile Profile = ControllerFixture.Profile;

    [Fact]
    public async Task Estop_while_moves_are_queued_stops_everything_and_latches()
    {
        // Time scale 5: slow enough that lines are queued in the firmware when the stop arrives.
        await using var c = await ControllerFixture.StartAsync(timeScale: 5);
        await c.HomeAsync();
        await c.StartHeartbeatAsync();
        var plan = DemoPlanGenerator.Generate(60, seed: 3);
        var session = await c.Sessions.CreateSessionAsync(new CreateSessionRequest { Plan = plan });
        await c.Sessions.StartAsync(new SessionRef { SessionId = session.Id });
        await c.WaitForAsync(session.Id, s => s.Dots.Placed >= 4);

        var status = await c.Safety.EmergencyStopAsync(new EmergencyStopRequest { Source = "test", Reason = "queued moves" }, deadline: DateTime.UtcNow.Add(ControllerFixture.Timeout));
        Assert.True(status.EstopLatched);
        Assert.Equal("", status.StopError);
        Assert.Equal(["feed-hold", "needle-off", "queue-flushed", "retracted"], status.StopSteps);

        var stopped = await c.WaitForAsync(session.Id, ControllerFixture.IsFinished);
        Assert.Equal(SessionState.EmergencyStopped, stopped.State);
        Assert.Equal(stopped.Dots.Total, stopped.Dots.Placed + stopped.Dots.Pending + stopped.Dots.InDoubt);
        Assert.InRange(stopped.Dots.InDoubt, 0, 1);

        // What physically happened after the feed-hold byte: the move in progress decelerated, then
        // only the straight-up retract with the needle drive off.
        var record = c.Simulator.MotionRecord;
        var hold = c.Simulator.RealtimeLog.First(r => r.Command == (byte)GrblRealtime.FeedHold);
        var door = c.Simulator.RealtimeLog.First(r => r.Command == (byte)GrblRealtime.SafetyDoor);
        var maxDecelSeconds = Enumerable.Range(0, 3).Max(a => Profile.MaxRateMmPerMin[a] / 60 / Profile.AccelerationMmPerS2[a]);
        foreach (var m in record.Where(m => m.StartSimSeconds < hold.SimSeconds))
        {
            Assert.True(m.EndSimSeconds <= hold.SimSeconds + maxDecelSeconds + 1e-6, $"{m} ran on past the deceleration");
        }
        var after = record.Where(m => m.StartSimSeconds >= hold.SimSeconds).ToList();
        Assert.All(after, m =>
        {
            Assert.False(m.SpindleOn, $"{m} ran with the needle drive on after the stop");
            Assert.True(m.To.Z >= m.From.Z && m.To.X == m.From.X && m.To.Y == m.From.Y, $"{m} is not a straight-up retract");
        });
        // Needle drive off when the door byte arrived (sim seconds are read a moment apart under a real clock).
        Assert.Contains(c.Simulator.SpindleLog, s => !s.On && s.SimSeconds <= door.SimSeconds + 1e-3 && s.SimSeconds >= hold.SimSeconds - 1e-3);
        Assert.False(c.Simulator.SpindleOn);

        // The latch holds: nothing starts while latched, and the reset does not restart motion.
        var resumeWhileLatched = await Assert.ThrowsAsync<Grpc.Core.RpcException>(() => c.Sessions.ResumeAsync(new SessionRef { SessionId = session.Id }).ResponseAsync);
        Assert.Contains("latched", resumeWhileLatched.Status.Detail);
        var motionsBeforeReset = c.Simulator.MotionRecord.Count;
        var reset = await c.Safety.ResetEmergencyStopAsync(new ResetEmergencyStopRequest { Source = "test" });
        Assert.False(reset.EstopLatched);
        var afterReset = await c.Sessions.GetAsync(new SessionRef { SessionId = session.Id });
        Assert.Equal(SessionState.EmergencyStopped, afterReset.State);
        await c.Machine.GetStatusAsync(new GetMachineStatusRequest());
        Assert.Equal(motionsBeforeReset, c.Simulator.MotionRecord.Count);

        // The operator looks at the skin (here: the motion record) and resolves the dot in doubt, then resumes.
        if (afterReset.Dots.InDoubt > 0)
        {
            var inDoubt = afterReset.InDoubt.Single().DotId;
            var placed = MotionTruth.PlacementsPerDot(plan, Profile, c.Simulator.MotionRecord)[inDoubt] == 1;
            await c.Sessions.ResolveDotsAsync(new ResolveDotsRequest
            {
                SessionId = session.Id, DotIds = { inDoubt }, Resolution = placed ? DotResolution.Placed : DotResolution.Redo, Operator = "test",
            });
        }
        if (!(await c.Machine.GetStatusAsync(new GetMachineStatusRequest())).Homed) await c.HomeAsync();
        await c.Sessions.ResumeAsync(new SessionRef { SessionId = session.Id });
        var done = await c.WaitForAsync(session.Id, ControllerFixture.IsFinished, TimeSpan.FromMinutes(3));
        Assert.Equal(SessionState.Completed, done.State);
        Assert.All(MotionTruth.PlacementsPerDot(plan, Profile, c.Simulator.MotionRecord), p => Assert.True(p.Value == 1, $"dot {p.Key} was placed {p.Value} times"));
    }

    [Fact]
    public async Task Estop_when_idle_latches_and_blocks_homing_until_reset()
    {
        await using var c = await ControllerFixture.StartAsync();
        var status = await c.Safety.EmergencyStopAsync(new EmergencyStopRequest { Source = "test" });
        Assert.True(status.EstopLatched);
        var again = await c.Safety.EmergencyStopAsync(new EmergencyStopRequest { Source = "test-2" });
        Assert.Equal("test", again.EstopSource);
        var home = await Assert.ThrowsAsync<Grpc.Core.RpcException>(() => c.Machine.HomeAsync(new HomeRequest()).ResponseAsync);
        Assert.Equal(Grpc.Core.StatusCode.FailedPrecondition, home.StatusCode);
        Assert.False((await c.Safety.ResetEmergencyStopAsync(new ResetEmergencyStopRequest())).EstopLatched);
        await c.HomeAsync();
        Assert.True((await c.Machine.GetStatusAsync(new GetMachineStatusRequest())).Homed);
    }
}
