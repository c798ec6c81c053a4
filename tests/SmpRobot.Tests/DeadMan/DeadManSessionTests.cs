using System.Device.Gpio;
using Grpc.Core;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Gantry.Simulation;
using SmpRobot.Controller.Plans;
using SmpRobot.Controller.Safety;
using SmpRobot.Tests.Integration;

namespace SmpRobot.Tests.DeadMan;

/// <summary>The dead-man belongs to the session's console, acts mid-dot, and the foot pedal holds the machine.</summary>
[Collection(ControllerCollection.Name)]
public sealed class DeadManSessionTests
{
    /// <summary>Long dwells: a dot takes about a second at time scale 1, so a hold lands mid-dot.</summary>
    private static Plan SlowPlan(int dots)
    {
        var plan = new Plan { Name = "slow", Units = "mm" };
        for (var i = 0; i < dots; i++) plan.Dots.Add(new Dot { Id = $"d{i + 1:D3}", XMm = i, YMm = 0, ZMm = 1, DepthMm = 1, DwellMs = 1000, PigmentId = "charcoal-1" });
        return plan;
    }

    private static async Task<Session> StartAsync(ControllerFixture c, Plan plan, TestConsole console)
    {
        var session = await c.Sessions.CreateSessionAsync(new CreateSessionRequest { Plan = plan });
        return await c.Sessions.StartAsync(new SessionRef { SessionId = session.Id, ConsoleId = console.ConsoleId });
    }

    /// <summary>The sim profile with a gpio section of <paramref name="gpioFields"/>, in a temporary file.</summary>
    private static string ProfileWithGpio(string gpioFields)
    {
        var profileText = File.ReadAllText(Path.Combine(TestProfiles.RepoRoot, "hardware", "profiles", "sim.json"));
        var profilePath = Path.Combine(Directory.CreateTempSubdirectory("smp-gpio-profile-").FullName, "sim-gpio.json");
        File.WriteAllText(profilePath, "{ \"gpio\": { " + gpioFields + " }," + profileText.TrimStart()[1..]);
        return profilePath;
    }

    [Fact]
    public async Task The_patients_hand_switch_pauses_the_session_at_once_and_only_the_operator_resumes()
    {
        const int switchPin = 24;
#pragma warning disable CA2000 // the controller's GPIO parts, given it through GpioDriver, own it and dispose it
        var driver = new SimulatedGpioDriver();
#pragma warning restore CA2000
        driver.Preset(switchPin, PinValue.Low); // normally closed: not pressed
        var profilePath = ProfileWithGpio("\"patientSwitchPin\": 24");
        await using var c = await ControllerFixture.StartAsync(timeScale: 1, configure: o => o with { ProfilePath = profilePath, GpioDriver = _ => driver });
        await c.HomeAsync();
        await using var console = await TestConsole.StartAsync(c, "console-patient");
        var status = await c.Machine.GetStatusAsync(new GetMachineStatusRequest());
        Assert.True(status.PatientSwitchConfigured);
        Assert.False(status.PatientSwitchPressed);
        var session = await StartAsync(c, SlowPlan(3), console);
        await c.WaitForAsync(session.Id, s => s.Dots.Commanded == 1);

        driver.SetLevel(switchPin, PinValue.High); // pressed: the contact opens
        var paused = await c.WaitForAsync(session.Id, s => s.State == SessionState.Paused);
        Assert.StartsWith("paused by the patient", paused.Reason);
        Assert.Equal(1, paused.Dots.InDoubt);
        AssertNeedlePulledOutAfterHold(c.Simulator);
        Assert.True((await c.Machine.GetStatusAsync(new GetMachineStatusRequest())).PatientSwitchPressed);
        await c.Sessions.ResolveDotsAsync(new ResolveDotsRequest { SessionId = session.Id, AllInDoubt = true, Resolution = DotResolution.Redo, Operator = "test" });
        var refused = await Assert.ThrowsAsync<RpcException>(() => c.Sessions.ResumeAsync(new SessionRef { SessionId = session.Id, ConsoleId = console.ConsoleId }).ResponseAsync);
        Assert.Contains("patient's hand switch is pressed", refused.Status.Detail);

        driver.SetLevel(switchPin, PinValue.Low); // let go
        Assert.Equal(SessionState.Paused, (await c.Sessions.GetAsync(new SessionRef { SessionId = session.Id })).State);
        await c.Sessions.ResumeAsync(new SessionRef { SessionId = session.Id, ConsoleId = console.ConsoleId });
        var done = await c.WaitForAsync(session.Id, ControllerFixture.IsFinished, TimeSpan.FromSeconds(60));
        Assert.Equal(SessionState.Completed, done.State);
    }

    [Fact]
    public async Task The_attention_output_is_on_while_the_machine_needs_the_operator()
    {
        const int lampPin = 25;
#pragma warning disable CA2000 // the controller's GPIO parts, given it through GpioDriver, own it and dispose it
        var driver = new SimulatedGpioDriver();
#pragma warning restore CA2000
        var profilePath = ProfileWithGpio("\"attentionOutputPin\": 25");
        await using var c = await ControllerFixture.StartAsync(timeScale: 20, configure: o => o with { ProfilePath = profilePath, GpioDriver = _ => driver });
        await c.HomeAsync();
        async Task ExpectAsync(PinValue level)
        {
            // The output is written every 100 ms: wait for writes until it has the level, bounded.
            using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            try
            {
                while (true)
                {
                    var next = driver.NextWrite; // before the check: a write after it completes this task
                    if (driver.LevelOf(lampPin) == level) break;
                    await next.WaitAsync(bound.Token);
                }
            }
            catch (OperationCanceledException) when (bound.IsCancellationRequested)
            {
                // Not reached in time: the assertion below says which level it kept.
            }
            Assert.Equal(level, driver.LevelOf(lampPin));
        }
        await ExpectAsync(PinValue.Low);
        await using var console = await TestConsole.StartAsync(c, "console-lamp");
        var session = await StartAsync(c, DemoPlanGenerator.Generate(200, seed: 4), console);
        await c.WaitForAsync(session.Id, s => s.Dots.Placed >= 2);
        await ExpectAsync(PinValue.Low);
        await c.Safety.EmergencyStopAsync(new EmergencyStopRequest { Source = "test" });
        await ExpectAsync(PinValue.High);
        await c.Safety.ResetEmergencyStopAsync(new ResetEmergencyStopRequest { Source = "test" });
        // Still on: the session was stopped and waits for the operator.
        await ExpectAsync(PinValue.High);
        await c.Sessions.AbortAsync(new SessionRef { SessionId = session.Id });
        await ExpectAsync(PinValue.Low);
    }

    /// <summary>After the last feed-hold byte: nothing but the needle going straight up, drive off.</summary>
    private static void AssertNeedlePulledOutAfterHold(SimulatedGantry simulator)
    {
        var hold = simulator.RealtimeLog.Last(b => b.Command == (byte)GrblRealtime.FeedHold);
        var after = simulator.MotionRecord.Where(m => m.StartSimSeconds >= hold.SimSeconds).ToList();
        Assert.All(after, m => Assert.True(!m.SpindleOn && m.To.X == m.From.X && m.To.Y == m.From.Y && m.To.Z >= m.From.Z, $"{m} after the hold"));
        // The plunge or its dwell was cut short: the hold came mid-dot, not after it.
        Assert.Contains(simulator.MotionRecord, m => !m.Completed && m.StartSimSeconds < hold.SimSeconds && (m.Kind == SimMotionKind.Dwell || m.To.Z < m.From.Z));
        Assert.False(simulator.SpindleOn);
    }

    [Fact]
    public async Task Another_consoles_heartbeats_do_not_keep_a_session_going_once_its_own_console_is_silent()
    {
        await using var c = await ControllerFixture.StartAsync(timeScale: 20);
        await c.HomeAsync();
        await using var own = await TestConsole.StartAsync(c, "console-own");
        await using var other = await TestConsole.StartAsync(c, "console-other");
        var session = await StartAsync(c, DemoPlanGenerator.Generate(300, seed: 2), own);
        await c.WaitForAsync(session.Id, s => s.Dots.Placed >= 3);

        await own.GoSilentAsync();
        var held = await c.WaitForAsync(session.Id, s => s.State == SessionState.Paused);
        Assert.Contains("held: operator heartbeat lost", held.Reason);
        Assert.True(held.Dots.Pending > 0, "the session went on to its end on the other console's beats");

        // The other console may take over, explicitly.
        if (held.Dots.InDoubt > 0)
        {
            await c.Sessions.ResolveDotsAsync(new ResolveDotsRequest { SessionId = session.Id, AllInDoubt = true, Resolution = DotResolution.Skip, Operator = "test" });
        }
        var refused = await Assert.ThrowsAsync<RpcException>(() => c.Sessions.ResumeAsync(new SessionRef { SessionId = session.Id, ConsoleId = own.ConsoleId }).ResponseAsync);
        Assert.Contains("operator heartbeat lost", refused.Status.Detail);
        var resumed = await c.Sessions.ResumeAsync(new SessionRef { SessionId = session.Id, ConsoleId = other.ConsoleId });
        Assert.Equal(SessionState.Running, resumed.State);
        await c.WaitForAsync(session.Id, s => s.Dots.Placed >= held.Dots.Placed + 2);
        await c.Sessions.AbortAsync(new SessionRef { SessionId = session.Id });
    }

    [Fact]
    public async Task A_console_that_hangs_up_mid_dot_has_the_needle_pulled_out_and_the_dot_left_in_doubt()
    {
        await using var c = await ControllerFixture.StartAsync(timeScale: 1);
        await c.HomeAsync();
        await using var console = await TestConsole.StartAsync(c, "console-killed");
        var session = await StartAsync(c, SlowPlan(4), console);
        await c.WaitForAsync(session.Id, s => s.Dots.Commanded == 1);

        await console.HangUpAsync();
        var held = await c.WaitForAsync(session.Id, s => s.State == SessionState.Paused);
        Assert.Contains("held: console console-killed is not connected", held.Reason);
        Assert.Equal(1, held.Dots.InDoubt);
        Assert.Contains("retracted mid-dot", held.InDoubt.Single().Note);
        AssertNeedlePulledOutAfterHold(c.Simulator);
    }

    [Fact]
    public async Task A_silent_console_mid_dot_holds_the_machine_within_the_dot()
    {
        await using var c = await ControllerFixture.StartAsync(timeScale: 1);
        await c.HomeAsync();
        await using var console = await TestConsole.StartAsync(c, "console-frozen");
        var session = await StartAsync(c, SlowPlan(4), console);
        await c.WaitForAsync(session.Id, s => s.Dots.Commanded == 1);

        await console.GoSilentAsync();
        var held = await c.WaitForAsync(session.Id, s => s.State == SessionState.Paused);
        Assert.Contains("held: operator heartbeat lost", held.Reason);
        Assert.Equal(1, held.Dots.InDoubt);
        AssertNeedlePulledOutAfterHold(c.Simulator);
    }

    [Fact]
    public async Task Releasing_the_foot_pedal_pulls_the_needle_out_and_pressing_it_again_does_not_resume()
    {
        const int pedalPin = 23;
#pragma warning disable CA2000 // the controller's GPIO parts, given it through GpioDriver, own it and dispose it
        var driver = new SimulatedGpioDriver();
#pragma warning restore CA2000
        driver.Preset(pedalPin, PinValue.Low); // held
        var profilePath = ProfileWithGpio("\"pedalPin\": 23, \"pedalPressedLow\": true, \"switchDebounceMs\": 20");
        await using var c = await ControllerFixture.StartAsync(timeScale: 1, configure: o => o with { ProfilePath = profilePath, GpioDriver = _ => driver });
        await c.HomeAsync();
        await using var console = await TestConsole.StartAsync(c, "console-pedal");
        var status = await c.Machine.GetStatusAsync(new GetMachineStatusRequest());
        Assert.True(status.PedalConfigured);
        Assert.True(status.PedalPressed);
        var session = await StartAsync(c, SlowPlan(3), console);
        await c.WaitForAsync(session.Id, s => s.Dots.Commanded == 1);

        driver.SetLevel(pedalPin, PinValue.High); // released
        var held = await c.WaitForAsync(session.Id, s => s.State == SessionState.Paused);
        Assert.Contains("held: foot pedal released", held.Reason);
        Assert.Equal(1, held.Dots.InDoubt);
        AssertNeedlePulledOutAfterHold(c.Simulator);
        Assert.False((await c.Machine.GetStatusAsync(new GetMachineStatusRequest())).PedalPressed);
        await c.Sessions.ResolveDotsAsync(new ResolveDotsRequest { SessionId = session.Id, AllInDoubt = true, Resolution = DotResolution.Redo, Operator = "test" });
        var refused = await Assert.ThrowsAsync<RpcException>(() => c.Sessions.ResumeAsync(new SessionRef { SessionId = session.Id, ConsoleId = console.ConsoleId }).ResponseAsync);
        Assert.Contains("foot pedal released", refused.Status.Detail);

        // Pressing it again changes nothing by itself: the session stays paused until a console resumes it.
        driver.SetLevel(pedalPin, PinValue.Low);
        Assert.True((await c.Machine.GetStatusAsync(new GetMachineStatusRequest())).PedalPressed);
        using (var watching = new CancellationTokenSource(TimeSpan.FromSeconds(1.5)))
        {
            using var watch = c.Sessions.Watch(new WatchSessionRequest { SessionId = session.Id }, cancellationToken: watching.Token);
            try
            {
                while (await watch.ResponseStream.MoveNext(watching.Token)) Assert.Equal(SessionState.Paused, watch.ResponseStream.Current.Session.State);
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled)
            {
                // Watched for the whole time: it stayed paused.
            }
        }

        await c.Sessions.ResumeAsync(new SessionRef { SessionId = session.Id, ConsoleId = console.ConsoleId });
        var done = await c.WaitForAsync(session.Id, ControllerFixture.IsFinished, TimeSpan.FromSeconds(60));
        Assert.Equal(SessionState.Completed, done.State);
        Assert.Equal(3, done.Dots.Placed);
    }
}
