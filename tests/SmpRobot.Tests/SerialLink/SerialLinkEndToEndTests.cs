using System.Text.Json;
using Google.Protobuf;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Gantry.Simulation;
using SmpRobot.Controller.Plans;
using SmpRobot.Tests.EndToEnd;
using SmpRobot.Tests.Integration;

namespace SmpRobot.Tests.SerialLink;

/// <summary>
/// The real executables over a real wire: <c>smp-controller simulate</c> on a pseudo-terminal (or
/// TCP), a second <c>smp-controller</c> talking grbl to it through System.IO.Ports, and <c>smp</c>.
/// What physically happened is read back from the simulator's --record file.
/// </summary>
[Collection(ControllerCollection.Name)]
public sealed class SerialLinkEndToEndTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);
    private readonly string _dir = Directory.CreateTempSubdirectory("smp-serial-e2e-").FullName;
    private readonly List<RealProcess> _controllers = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var c in _controllers) await c.DisposeAsync(); // kills any controller a failed test left running
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task A_session_over_the_pty_completes_and_places_every_dot_exactly_once()
    {
        var plan = WritePlan(30, out var planPath);
        var tty = Path.Combine(_dir, "ttySIM");
        var record = Path.Combine(_dir, "record.json");
        await using var simulator = await StartSimulatorAsync("--pty", tty, "--time-scale", "50", "--record", record);
        var url = await StartControllerAsync($"serial:{tty}@115200");

        await using var run = RealProcess.Start("smp", "run", planPath, "--no-ui", "--json", "--controller", url.Url);
        Assert.Equal(0, await run.ExitCodeAsync(Timeout));
        var result = JsonDocument.Parse(run.Stdout).RootElement;
        Assert.Equal("COMPLETED", result.GetProperty("state").GetString());
        Assert.Equal(30, result.GetProperty("dots").GetProperty("placed").GetInt32());

        await StopAsync(url.Process);
        var motions = await StopAndReadRecordAsync(simulator, record);
        var placements = MotionTruth.PlacementsPerDot(plan, TestProfiles.Sim(), motions.Motions);
        Assert.All(placements, p => Assert.True(p.Value == 1, $"dot {p.Key} was placed {p.Value} times"));
    }

    [Fact]
    public async Task A_second_controller_on_the_same_port_is_refused_without_touching_it_and_the_first_session_goes_on()
    {
        var plan = WritePlan(60, out var planPath);
        var tty = Path.Combine(_dir, "ttySIM");
        var record = Path.Combine(_dir, "record.json");
        await using var simulator = await StartSimulatorAsync("--pty", tty, "--time-scale", "20", "--record", record);
        var first = await StartControllerAsync($"serial:{tty}@115200", "20");
        await using var run = RealProcess.Start("smp", "run", planPath, "--no-ui", "--json", "--controller", first.Url);
        await run.WaitForLineAsync(l => l.Contains("started", StringComparison.Ordinal) && l.Contains("RUNNING", StringComparison.Ordinal), Timeout);
        var opensBefore = simulator.Stderr.Split('\n').Count(l => l.Contains("board reset", StringComparison.Ordinal));

        // Started by mistake on the same port (another address).
        await using var second = RealProcess.Start("smp-controller", "--gantry", $"serial:{tty}@115200", "--urls", $"http://127.0.0.1:{RealProcess.FreePort()}", "--data", Path.Combine(_dir, "data2"));
        Assert.Equal(1, await second.ExitCodeAsync(Timeout));
        Assert.Contains("is in use by another process", second.Stderr, StringComparison.Ordinal);
        Assert.Contains("The port was not opened", second.Stderr, StringComparison.Ordinal);

        Assert.Equal(0, await run.ExitCodeAsync(Timeout));
        Assert.Equal("COMPLETED", JsonDocument.Parse(run.Stdout).RootElement.GetProperty("state").GetString());
        await StopAsync(first.Process);
        var truth = await StopAndReadRecordAsync(simulator, record);
        // The board was never reset by the second controller (every open of the pty resets it).
        Assert.Equal(opensBefore, simulator.Stderr.Split('\n').Count(l => l.Contains("board reset", StringComparison.Ordinal)));
        Assert.All(MotionTruth.PlacementsPerDot(plan, TestProfiles.Sim(), truth.Motions), p => Assert.True(p.Value == 1, $"dot {p.Key} was placed {p.Value} times"));
    }

    [Fact]
    public async Task An_estop_over_the_pty_puts_feed_hold_on_the_wire_and_no_plunge_follows()
    {
        var plan = WritePlan(300, out var planPath);
        var tty = Path.Combine(_dir, "ttySIM");
        var record = Path.Combine(_dir, "record.json");
        await using var simulator = await StartSimulatorAsync("--pty", tty, "--time-scale", "20", "--record", record);
        var controller = await StartControllerAsync($"serial:{tty}@115200", "20");

        await using var run = RealProcess.Start("smp", "run", planPath, "--no-ui", "--json", "--controller", controller.Url);
        await run.WaitForLineAsync(l => l.Contains("started", StringComparison.Ordinal) && l.Contains("RUNNING", StringComparison.Ordinal), Timeout);
        await using var estop = RealProcess.Start("smp", "estop", "--json", "--controller", controller.Url);
        Assert.Equal(0, await estop.ExitCodeAsync(Timeout));
        Assert.Equal(3, await run.ExitCodeAsync(Timeout));
        Assert.Equal("EMERGENCY_STOPPED", JsonDocument.Parse(run.Stdout).RootElement.GetProperty("state").GetString());

        await StopAsync(controller.Process);
        var truth = await StopAndReadRecordAsync(simulator, record);
        var hold = truth.Realtime.FirstOrDefault(r => r.Command == (byte)GrblRealtime.FeedHold);
        Assert.NotNull(hold);
        var plunges = MotionTruth.Plunges(truth.Motions, plan, TestProfiles.Sim());
        Assert.DoesNotContain(plunges, p => p.Motion.StartSimSeconds >= hold.SimSeconds);
        Assert.All(MotionTruth.PlacementsPerDot(plan, TestProfiles.Sim(), truth.Motions), p => Assert.True(p.Value <= 1, $"dot {p.Key} was placed {p.Value} times"));
    }

    [Fact]
    public async Task A_hard_limit_over_the_pty_is_reset_after_grbls_deaf_half_second_and_the_controller_still_stops_on_sigterm()
    {
        var plan = WritePlan(20, out var planPath);
        var tty = Path.Combine(_dir, "ttySIM");
        var record = Path.Combine(_dir, "record.json");
        await using var simulator = await StartSimulatorAsync("--pty", tty, "--time-scale", "20", "--record", record, "--faults", "alarm-at-dot=5");
        var controller = await StartControllerAsync($"serial:{tty}@115200", "20");

        await using var run = RealProcess.Start("smp", "run", planPath, "--no-ui", "--json", "--controller", controller.Url);
        Assert.Equal(1, await run.ExitCodeAsync(Timeout));
        var result = JsonDocument.Parse(run.Stdout).RootElement;
        Assert.Equal("FAULTED", result.GetProperty("state").GetString());
        Assert.Contains("ALARM:1", result.GetProperty("reason").GetString(), StringComparison.Ordinal);
        // grbl locks after a hard limit, answering nothing, not even '?'; the controller resets it once it listens again.
        await controller.Process.WaitForLineAsync(l => l.Contains("reset after ALARM:1: it answers again", StringComparison.Ordinal), Timeout);
        await using var status = RealProcess.Start("smp", "machine", "status", "--json", "--controller", controller.Url);
        Assert.Equal(0, await status.ExitCodeAsync(Timeout));
        var machine = JsonDocument.Parse(status.Stdout).RootElement;
        Assert.True(machine.GetProperty("connected").GetBoolean());
        Assert.False(machine.GetProperty("homed").GetBoolean());

        // SIGTERM is honoured after all this.
        await StopAsync(controller.Process);
        var truth = await StopAndReadRecordAsync(simulator, record);
        Assert.All(MotionTruth.PlacementsPerDot(plan, TestProfiles.Sim(), truth.Motions), p => Assert.True(p.Value <= 1, $"dot {p.Key} was placed {p.Value} times"));
    }

    [Fact]
    public async Task After_the_device_goes_away_smp_machine_connect_brings_it_back_unhomed_and_a_session_runs_without_a_controller_restart()
    {
        WritePlan(8, out var planPath);
        var tty = Path.Combine(_dir, "ttySIM");
        var firstDevice = await StartSimulatorAsync("--pty", tty, "--time-scale", "50");
        var controller = await StartControllerAsync($"serial:{tty}@115200");
        await using (var home = RealProcess.Start("smp", "machine", "home", "--controller", controller.Url)) Assert.Equal(0, await home.ExitCodeAsync(Timeout));

        // The board goes away (unplugged, powered off): the controller sees the link drop.
        using var channel = Grpc.Net.Client.GrpcChannel.ForAddress(controller.Url);
        var machine = new MachineService.MachineServiceClient(channel);
        using (var cts = new CancellationTokenSource(Timeout))
        {
            using var watch = machine.WatchStatus(new WatchMachineStatusRequest(), cancellationToken: cts.Token);
            Assert.True(await watch.ResponseStream.MoveNext(cts.Token));
            firstDevice.Terminate();
            Assert.Equal(0, await firstDevice.ExitCodeAsync(Timeout));
            await firstDevice.DisposeAsync();
            while (watch.ResponseStream.Current.Connected) Assert.True(await watch.ResponseStream.MoveNext(cts.Token), "the status stream ended while still connected");
        }
        await using (var status = RealProcess.Start("smp", "machine", "status", "--controller", controller.Url))
        {
            Assert.Equal(1, await status.ExitCodeAsync(Timeout));
            Assert.Contains("smp machine connect", status.Stdout + status.Stderr, StringComparison.Ordinal);
        }

        // Plugged in again: the same controller process reconnects on the operator's word; homing is required again.
        await using var secondDevice = await StartSimulatorAsync("--pty", tty, "--time-scale", "50");
        await using (var connect = RealProcess.Start("smp", "machine", "connect", "--json", "--controller", controller.Url))
        {
            Assert.Equal(0, await connect.ExitCodeAsync(Timeout));
            var reconnected = JsonDocument.Parse(connect.Stdout).RootElement;
            Assert.True(reconnected.GetProperty("connected").GetBoolean());
            Assert.False(reconnected.GetProperty("homed").GetBoolean());
        }
        await using (var run = RealProcess.Start("smp", "run", planPath, "--no-ui", "--json", "--controller", controller.Url))
        {
            Assert.Equal(0, await run.ExitCodeAsync(Timeout)); // smp run homes first
            Assert.Equal("COMPLETED", JsonDocument.Parse(run.Stdout).RootElement.GetProperty("state").GetString());
        }
        await StopAsync(controller.Process);
        secondDevice.Terminate();
        Assert.Equal(0, await secondDevice.ExitCodeAsync(Timeout));
    }

    [Fact]
    public async Task A_session_over_tcp_completes_and_places_every_dot_exactly_once()
    {
        var plan = WritePlan(30, out var planPath);
        var port = RealProcess.FreePort();
        var record = Path.Combine(_dir, "record.json");
        await using var simulator = await StartSimulatorAsync("--pty", Path.Combine(_dir, "ttySIM"), "--tcp", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--time-scale", "50", "--record", record);
        var controller = await StartControllerAsync($"tcp:127.0.0.1:{port}");

        await using var run = RealProcess.Start("smp", "run", planPath, "--no-ui", "--json", "--controller", controller.Url);
        Assert.Equal(0, await run.ExitCodeAsync(Timeout));
        Assert.Equal("COMPLETED", JsonDocument.Parse(run.Stdout).RootElement.GetProperty("state").GetString());

        await StopAsync(controller.Process);
        var truth = await StopAndReadRecordAsync(simulator, record);
        Assert.All(MotionTruth.PlacementsPerDot(plan, TestProfiles.Sim(), truth.Motions), p => Assert.True(p.Value == 1, $"dot {p.Key} was placed {p.Value} times"));
    }

    private Plan WritePlan(int dots, out string path)
    {
        var plan = DemoPlanGenerator.Generate(dots, seed: 11);
        path = Path.Combine(_dir, "plan.json");
        File.WriteAllText(path, JsonFormatter.Default.Format(plan));
        return plan;
    }

    private static async Task<RealProcess> StartSimulatorAsync(params string[] args)
    {
        var simulator = RealProcess.Start("smp-controller", ["simulate", .. args]);
        await simulator.WaitForLineAsync(l => l.StartsWith("simulating on ", StringComparison.Ordinal) && l.Contains(" at 115200 baud", StringComparison.Ordinal), Timeout);
        return simulator;
    }

    private sealed record Controller(RealProcess Process, string Url);

    private async Task<Controller> StartControllerAsync(string gantry, string timeScale = "50")
    {
        var url = $"http://127.0.0.1:{RealProcess.FreePort()}";
        var data = Path.Combine(_dir, "data");
        var process = RealProcess.Start("smp-controller", "--gantry", gantry, "--time-scale", timeScale, "--urls", url, "--data", data);
        _controllers.Add(process);
        await process.WaitForLineAsync(l => l.Contains("Connected to " + gantry, StringComparison.Ordinal), Timeout);
        await process.WaitForLineAsync(l => l.Contains("Now listening", StringComparison.Ordinal), Timeout);
        return new Controller(process, url);
    }

    private static async Task StopAsync(RealProcess controller)
    {
        controller.Terminate();
        Assert.Equal(0, await controller.ExitCodeAsync(Timeout));
    }

    private static async Task<SimulationRecord> StopAndReadRecordAsync(RealProcess simulator, string record)
    {
        simulator.Terminate();
        Assert.Equal(0, await simulator.ExitCodeAsync(Timeout));
        Assert.Contains("board reset", simulator.Stderr, StringComparison.Ordinal);
        return SimulationRecord.Read(record);
    }
}
