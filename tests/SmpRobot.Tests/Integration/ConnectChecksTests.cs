using Grpc.Core;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Gantry.Simulation;
using SmpRobot.Controller.Plans;

namespace SmpRobot.Tests.Integration;

/// <summary>The connect checks and check mode, through the gRPC API as the console uses them.</summary>
[Collection(ControllerCollection.Name)]
public class ConnectChecksTests
{
    [Fact]
    public async Task Start_with_check_first_checks_the_whole_program_then_runs_it()
    {
        await using var c = await ControllerFixture.StartAsync();
        await c.HomeAsync();
        await c.StartHeartbeatAsync();
        var plan = DemoPlanGenerator.Generate(20, seed: 5);
        var created = await c.Sessions.CreateSessionAsync(new CreateSessionRequest { Plan = plan });

        var started = await c.Sessions.StartAsync(new SessionRef { SessionId = created.Id, CheckFirst = true }, deadline: DateTime.UtcNow.Add(ControllerFixture.Timeout));
        Assert.Equal(SessionState.Running, started.State);
        var done = await c.WaitForAsync(created.Id, ControllerFixture.IsFinished);
        Assert.Equal(SessionState.Completed, done.State);
        Assert.All(MotionTruth.PlacementsPerDot(plan, ControllerFixture.Profile, c.Simulator.MotionRecord), p => Assert.Equal(1, p.Value));
    }

    [Fact]
    public async Task A_board_whose_settings_differ_from_the_profile_refuses_to_start_and_says_which()
    {
        var profile = ControllerFixture.Profile;
        var board = new SimulatedGantry(profile with { StepsPerMm = profile.StepsPerMm with { X = 100 } }, TimeProvider.System, new SimulatedGantryOptions { TimeScale = 200 });
        await using var c = await ControllerFixture.StartAsync(board);
        await c.HomeAsync();
        await c.StartHeartbeatAsync();
        var created = await c.Sessions.CreateSessionAsync(new CreateSessionRequest { Plan = DemoPlanGenerator.Generate(5, seed: 5) });

        var e = await Assert.ThrowsAsync<RpcException>(() => c.Sessions.StartAsync(new SessionRef { SessionId = created.Id }).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        Assert.Contains("$100 (X steps/mm)", e.Status.Detail, StringComparison.Ordinal);
        Assert.Empty(MotionTruth.Plunges(board.MotionRecord, DemoPlanGenerator.Generate(5, seed: 5), profile));
        var status = await c.Machine.GetStatusAsync(new GetMachineStatusRequest());
        Assert.Contains(status.SettingsDifferences, d => d.Number == 100);
    }
}
