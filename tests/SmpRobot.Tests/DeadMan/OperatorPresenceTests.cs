using System.Device.Gpio;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using SmpRobot.Controller.Safety;
using SmpRobot.Machine;

namespace SmpRobot.Tests.DeadMan;

public class OperatorPresenceTests
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 2, 10, 0, 0, TimeSpan.Zero));
    private static readonly MachineProfile Profile = TestProfiles.Sim() with { DeadManTimeoutMs = 400 };

    [Fact]
    public void Presence_belongs_to_one_console_and_counts_only_fresh_beats_with_increasing_sequences()
    {
        var presence = new OperatorPresence(Profile, _time);
        using var a = presence.OpenStream();
        using var b = presence.OpenStream();
        Assert.True(a.Beat("console-a", 1, "ana"));
        Assert.True(b.Beat("console-b", 1, "ben"));
        Assert.Equal("console-a", a.ConsoleId);
        Assert.True(presence.IsPresent("console-a"));
        Assert.Equal("ana", presence.OperatorName("console-a"));

        // Console A goes silent while B keeps beating: A is absent, B does not stand in for it.
        for (var i = 2; i < 10; i++)
        {
            _time.Advance(TimeSpan.FromMilliseconds(100));
            Assert.True(b.Beat("console-b", (ulong)i, "ben"));
        }
        Assert.False(presence.IsPresent("console-a"));
        Assert.Contains("operator heartbeat lost (last beat 800 ms ago, limit 400 ms)", presence.AbsenceReason("console-a"));
        Assert.True(presence.IsPresent("console-b"));
        Assert.Equal("console-b", presence.FreshestConsole);

        // A beat that does not advance the sequence (a replay, a duplicate) refreshes nothing.
        Assert.False(a.Beat("console-a", 1, "ana"));
        Assert.False(a.Beat("console-a", 0, "ana"));
        Assert.False(presence.IsPresent("console-a"));
        Assert.Equal(2, presence.RejectedBeats);
        Assert.True(a.Beat("console-a", 2, "ana"));
        Assert.True(presence.IsPresent("console-a"));
        // A stream keeps the console id of its first beat.
        Assert.True(a.Beat("console-z", 3, "ana"));
        Assert.Equal("console-a", a.ConsoleId);
    }

    [Fact]
    public void A_closed_stream_is_absence_at_once_and_is_announced()
    {
        var presence = new OperatorPresence(Profile, _time);
        var lost = new List<string?>();
        presence.Lost += (_, e) => lost.Add(e.ConsoleId);
        var a = presence.OpenStream();
        a.Beat("console-a", 1, "ana");
        a.Dispose();
        a.Dispose();
        Assert.Equal(["console-a"], lost);
        Assert.Contains("console console-a is not connected", presence.AbsenceReason("console-a"));
        Assert.Null(presence.FreshestConsole);
        // A beatless stream names itself.
        using var anonymous = presence.OpenStream();
        Assert.StartsWith("stream-", anonymous.ConsoleId);
    }

    [Fact]
    public void A_released_pedal_is_absence_whatever_the_heartbeats()
    {
        var pedal = new FakePedal { IsEngaged = true };
        var presence = new OperatorPresence(Profile, _time, pedal);
        var lost = new List<string>();
        presence.Lost += (_, e) => lost.Add(e.Reason);
        using var a = presence.OpenStream();
        a.Beat("console-a", 1, "ana");
        Assert.True(presence.IsPresent("console-a"));
        pedal.Release();
        Assert.Equal(["foot pedal released"], lost);
        Assert.False(presence.IsPresent("console-a"));
        Assert.Contains("foot pedal released", presence.AbsenceReason("console-a"));
        pedal.IsEngaged = true;
        Assert.True(presence.IsPresent("console-a"));
    }

    private sealed class FakePedal : ISafetySwitch
    {
        public string Name => "foot pedal";
        public bool IsEngaged { get; set; }
        public event EventHandler? Disengaged;

        public void Release()
        {
            IsEngaged = false;
            Disengaged?.Invoke(this, EventArgs.Empty);
        }
    }
}

public sealed class GpioSafetySwitchTests : IDisposable
{
    private const int Pin = 17;
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 2, 10, 0, 0, TimeSpan.Zero));
    private readonly SimulatedGpioDriver _driver = new();
    private GpioSafetySwitch? _pedal;

    public void Dispose() => _pedal?.Dispose();

    private GpioSafetySwitch Start(bool heldAtStart, double debounceMs = 200)
    {
        // Engaged pulls the pin low; the pin is pulled up, so an open circuit reads "disengaged".
        _driver.Preset(Pin, heldAtStart ? PinValue.Low : PinValue.High);
        _pedal = new GpioSafetySwitch("foot pedal", 0, Pin, engagedLow: true, TimeSpan.FromMilliseconds(debounceMs), _driver, _time, NullLogger<GpioSafetySwitch>.Instance);
        return _pedal;
    }

    [Fact]
    public void The_state_at_start_is_read_and_the_pin_is_biased_towards_released()
    {
        Assert.True(Start(heldAtStart: true).IsEngaged);
        Assert.Equal(PinMode.InputPullUp, _driver.ModeOf(Pin));
    }

    [Fact]
    public void A_release_acts_on_its_first_edge_and_bounce_after_it_does_not_count_as_a_press()
    {
        var pedal = Start(heldAtStart: true);
        var released = 0;
        pedal.Disengaged += (_, _) => released++;
        _driver.SetLevel(Pin, PinValue.High);
        Assert.False(pedal.IsEngaged);
        Assert.Equal(1, released);
        // Contact bounce right after the release: not a press.
        _driver.SetLevel(Pin, PinValue.Low);
        _driver.SetLevel(Pin, PinValue.High);
        Assert.False(pedal.IsEngaged);
        Assert.Equal(1, released);
    }

    [Fact]
    public void A_press_counts_and_a_missed_release_edge_is_caught_by_the_poll()
    {
        var pedal = Start(heldAtStart: false, debounceMs: 0);
        Assert.False(pedal.IsEngaged);
        _driver.SetLevel(Pin, PinValue.Low);
        Assert.True(pedal.IsEngaged);
        var released = 0;
        pedal.Disengaged += (_, _) => released++;
        // The line goes high without an edge reaching us (a missed interrupt).
        _driver.Preset(Pin, PinValue.High);
        Assert.True(pedal.IsEngaged);
        _time.Advance(pedal.PollInterval);
        Assert.False(pedal.IsEngaged);
        Assert.Equal(1, released);
    }
}
