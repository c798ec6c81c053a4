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
}
