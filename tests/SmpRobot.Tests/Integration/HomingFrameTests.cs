using Grpc.Core;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Gantry.Simulation;

namespace SmpRobot.Tests.Integration;

/// <summary>Homing is verified against the frame the profile says the firmware sets up, and sessions run in each frame.</summary>
[Collection(ControllerCollection.Name)]
public class HomingFrameTests
{
    [Fact]
    public async Task A_board_that_homes_elsewhere_than_the_profile_says_is_not_homed_and_says_the_difference()
    {
        // Same $ settings, but the board's grbl was built with HOMING_FORCE_SET_ORIGIN (not readable over the wire).
        var board = TestProfiles.Sim() with { HomingForceSetOrigin = true };
        var simulator = new SimulatedGantry(board, TimeProvider.System, new SimulatedGantryOptions { TimeScale = 200 });
        await using var c = await ControllerFixture.StartAsync(simulator: simulator);

        var refused = await Assert.ThrowsAsync<RpcException>(c.HomeAsync);
        Assert.Contains("not homed", refused.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("not at the profile's home (-1, -1, -1)", refused.Status.Detail, StringComparison.Ordinal);
        var status = await c.Machine.GetStatusAsync(new GetMachineStatusRequest());
        Assert.False(status.Homed);
        Assert.Contains("homingForceSetOrigin", status.LastAlarm, StringComparison.Ordinal);
        var check = await c.Sessions.CheckStartAsync(new CheckStartRequest());
        Assert.False(check.Ready);
    }

    [Theory]
    [InlineData("sim.json")]
    [InlineData("sim-origin.json")]
    public async Task A_whole_session_places_every_dot_once_in_each_machine_frame(string file)
    {
        var path = Path.Combine(TestProfiles.RepoRoot, "hardware", "profiles", file);
        var profile = SmpRobot.Machine.MachineProfile.Load(path);
        var simulator = new SimulatedGantry(profile, TimeProvider.System, new SimulatedGantryOptions { TimeScale = 200 });
        await using var c = await ControllerFixture.StartAsync(simulator: simulator, configure: o => o with { ProfilePath = path });
        await c.HomeAsync();
        Assert.Equal(profile.HomePosition, simulator.Position);
        await c.StartHeartbeatAsync();
        var plan = SmpRobot.Controller.Plans.DemoPlanGenerator.Generate(20, seed: 4);
        var session = await c.Sessions.CreateSessionAsync(new CreateSessionRequest { Plan = plan });
        await c.Sessions.StartAsync(new SessionRef { SessionId = session.Id });
        var final = await c.WaitForAsync(session.Id, ControllerFixture.IsEnded);

        Assert.Equal(SessionState.Completed, final.State);
        Assert.Equal(20, final.Dots.Placed);
        // Every motion after homing (whose switches may lie beyond the soft limits) stayed inside the firmware's
        // envelope, and each dot's plunge reached its target in that frame.
        Assert.All(simulator.MotionRecord.Where(m => m.Kind != SimMotionKind.Homing), m => Assert.True(profile.InEnvelope(m.To), $"{m} outside {profile.EnvelopeText()}"));
        var feeds = simulator.MotionRecord.Where(m => m.Kind == SimMotionKind.Feed && m.Completed).ToList();
        var targets = MotionTruth.DepthTargets(plan, profile);
        Assert.All(plan.Dots, dot => Assert.Contains(feeds, m => m.To.DistanceTo(targets[dot.Id]) < 1e-6));
    }

    [Fact]
    public async Task A_failed_homing_cycle_is_said_so_and_the_link_stays_usable_for_the_next_one()
    {
        var simulator = new SimulatedGantry(TestProfiles.Sim(), TimeProvider.System, new SimulatedGantryOptions { TimeScale = 200, Faults = FaultPlan.Parse("homing-fail=9") });
        await using var c = await ControllerFixture.StartAsync(simulator: simulator);

        // grbl 1.1h: ALARM:9, the $H's ok, then its own reset's banner; none of it is "out of step".
        var failed = await Assert.ThrowsAsync<RpcException>(c.HomeAsync);
        Assert.Contains("homing failed: ALARM:9", failed.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("limit switches", failed.Status.Detail, StringComparison.Ordinal);
        Assert.Equal("homing-fail", Assert.Single(simulator.FaultLog).Fault);
        var status = await c.Machine.GetStatusAsync(new GetMachineStatusRequest());
        Assert.True(status.Connected);
        Assert.False(status.Homed);

        await c.HomeAsync();
        Assert.Equal(TestProfiles.Sim().HomePosition, simulator.Position);
        await c.StartHeartbeatAsync();
        var session = await c.Sessions.CreateSessionAsync(new CreateSessionRequest { Plan = SmpRobot.Controller.Plans.DemoPlanGenerator.Generate(5, seed: 3) });
        await c.Sessions.StartAsync(new SessionRef { SessionId = session.Id });
        Assert.Equal(SessionState.Completed, (await c.WaitForAsync(session.Id, ControllerFixture.IsEnded)).State);
    }

    [Fact]
    public async Task After_the_link_drops_a_reconnect_brings_the_gantry_back_unhomed_and_homing_works_again()
    {
        await using var c = await ControllerFixture.StartAsync();
        await c.HomeAsync();
        using var watch = c.Machine.WatchStatus(new WatchMachineStatusRequest(), deadline: DateTime.UtcNow.AddSeconds(15));
        Assert.True(await watch.ResponseStream.MoveNext(CancellationToken.None));
        c.Simulator.Disconnect();
        while (watch.ResponseStream.Current.Connected)
        {
            Assert.True(await watch.ResponseStream.MoveNext(CancellationToken.None), "the machine watch ended while still connected");
        }

        // smp machine connect: no controller restart needed.
        var reconnected = await c.Machine.ConnectAsync(new ConnectRequest(), deadline: DateTime.UtcNow.AddSeconds(30));
        Assert.True(reconnected.Connected);
        Assert.False(reconnected.Homed);
        Assert.True(reconnected.SettingsChecked);
        await c.HomeAsync();
        Assert.True((await c.Machine.GetStatusAsync(new GetMachineStatusRequest())).Homed);
    }
}
