using System.Device.Gpio;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using SmpRobot.Controller.Safety;
using SmpRobot.Controller.Storage;
using SmpRobot.Machine;

namespace SmpRobot.Tests.Connect;

/// <summary>The optional GPIO e-stop and door inputs, on a simulated GPIO chip and a fake clock.</summary>
public sealed class GpioSafetyInputsTests : IDisposable
{
    private const int EstopPin = 17;
    private const int DoorPin = 27;
    private static readonly GpioInputs Config = new() { Chip = 0, EstopPin = EstopPin, DoorPin = DoorPin, ActiveLow = true, DebounceMs = 5 };

    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 3, 1, 9, 0, 0, TimeSpan.Zero));
    private readonly SimulatedGpioDriver _driver = new();
    private readonly List<(string Source, string Reason)> _trips = [];
    private GpioSafetyInputs? _inputs;

    public void Dispose() => _inputs?.Dispose();

    private List<(string Source, string Reason)> Trips()
    {
        lock (_trips) return [.. _trips];
    }

    private GpioSafetyInputs Start(GpioInputs? config = null, bool circuitsClosed = true)
    {
        config ??= Config;
        // Closed NC contacts hold the lines at the inactive level.
        var inactive = config.ActiveLow ? PinValue.High : PinValue.Low;
        if (circuitsClosed)
        {
            if (config.EstopPin is { } e) _driver.Preset(e, inactive);
            if (config.DoorPin is { } d) _driver.Preset(d, inactive);
        }
        _inputs = new GpioSafetyInputs(config, _driver, (source, reason) =>
        {
            lock (_trips) _trips.Add((source, reason));
            return Task.CompletedTask;
        }, _time, NullLogger<GpioSafetyInputs>.Instance);
        _inputs.Start();
        return _inputs;
    }

    [Fact]
    public void Closed_circuits_do_not_trip_and_the_lines_are_biased_towards_active()
    {
        var inputs = Start();
        _time.Advance(TimeSpan.FromSeconds(1));

        Assert.Empty(Trips());
        Assert.False(inputs.EstopActive);
        Assert.False(inputs.DoorOpen);
        // Active low: pulled down, so a cut wire reads as pressed / open.
        Assert.Equal(PinMode.InputPullDown, _driver.ModeOf(EstopPin));
        Assert.Equal(PinMode.InputPullDown, _driver.ModeOf(DoorPin));
    }

    [Fact]
    public void Pressing_the_estop_trips_once_at_once_and_bounce_does_not_trip_again()
    {
        var inputs = Start();

        _driver.SetLevel(EstopPin, PinValue.Low);
        var trip = Assert.Single(Trips()); // no time passed: activation is not delayed by the debounce
        Assert.Equal(GpioSafetyInputs.EstopSource, trip.Source);
        Assert.Contains("e-stop", trip.Reason, StringComparison.Ordinal);
        Assert.True(inputs.EstopActive);

        // Contact bounce while pressing and releasing, each shorter than the debounce time.
        foreach (var level in new[] { PinValue.High, PinValue.Low, PinValue.High, PinValue.Low, PinValue.High })
        {
            _driver.SetLevel(EstopPin, level);
            _time.Advance(TimeSpan.FromMilliseconds(1));
        }
        _driver.SetLevel(EstopPin, PinValue.Low);
        Assert.Single(Trips());
        Assert.True(inputs.EstopActive);

        // Released for good: re-armed once it stayed inactive past the debounce time (next poll).
        _driver.SetLevel(EstopPin, PinValue.High);
        _time.Advance(TimeSpan.FromMilliseconds(4));
        Assert.True(inputs.EstopActive);
        _time.Advance(inputs.PollInterval);
        Assert.False(inputs.EstopActive);
        Assert.Single(Trips()); // releasing restarts nothing

        _driver.SetLevel(EstopPin, PinValue.Low);
        Assert.Equal(2, Trips().Count);
        Assert.Equal(2, inputs.Trips);
    }

    [Fact]
    public void Opening_the_door_trips_and_closing_it_does_not()
    {
        var inputs = Start();

        _driver.SetLevel(DoorPin, PinValue.Low);
        Assert.Equal([GpioSafetyInputs.DoorSource], Trips().Select(t => t.Source));
        Assert.Contains("door opened", Trips()[0].Reason, StringComparison.Ordinal);
        Assert.True(inputs.DoorOpen);
        Assert.False(inputs.EstopActive);

        _driver.SetLevel(DoorPin, PinValue.High);
        _time.Advance(inputs.PollInterval);
        Assert.False(inputs.DoorOpen);
        Assert.Single(Trips());
    }

    [Fact]
    public void An_open_circuit_at_start_trips_at_start()
    {
        // Nothing holds the e-stop line high (button pressed, or the wire is cut): the pull-down wins.
        _driver.Preset(DoorPin, PinValue.High);
        var inputs = Start(circuitsClosed: false);

        var trip = Assert.Single(Trips());
        Assert.Equal(GpioSafetyInputs.EstopSource, trip.Source);
        Assert.True(inputs.EstopActive);
    }

    [Fact]
    public void A_pulse_too_short_to_read_still_trips()
    {
        var inputs = Start();
        _driver.Glitch(EstopPin, PinEventTypes.Falling);

        Assert.Single(Trips());
        Assert.True(inputs.EstopActive);
        // The line reads inactive all along: re-armed once polling saw it inactive for the debounce time.
        _time.Advance(inputs.PollInterval);
        _time.Advance(inputs.PollInterval);
        Assert.False(inputs.EstopActive);

        _driver.Glitch(EstopPin, PinEventTypes.Rising); // an edge towards inactive trips nothing
        Assert.Single(Trips());
    }

    [Fact]
    public void A_missed_edge_is_caught_by_polling()
    {
        var inputs = Start();
        _driver.Preset(DoorPin, PinValue.Low); // the level changed but no edge was delivered

        Assert.Empty(Trips());
        _time.Advance(inputs.PollInterval);
        Assert.Equal([GpioSafetyInputs.DoorSource], Trips().Select(t => t.Source));
    }

    [Fact]
    public void Active_high_inputs_are_pulled_up_and_trip_on_a_rising_edge()
    {
        var config = Config with { ActiveLow = false, DoorPin = null };
        var inputs = Start(config);
        Assert.Equal(PinMode.InputPullUp, _driver.ModeOf(EstopPin));
        Assert.Null(_driver.ModeOf(DoorPin));

        _driver.SetLevel(EstopPin, PinValue.High);
        Assert.Single(Trips());
        Assert.True(inputs.EstopActive);
    }

    [System.Diagnostics.CodeAnalysis.SuppressMessage("Reliability", "CA2000", Justification = "the GpioSafetyInputs owns the driver and disposes it")]
    [Fact]
    public void Without_bias_support_the_pins_are_plain_inputs()
    {
        var driver = new SimulatedGpioDriver { SupportsBias = false };
        driver.Preset(EstopPin, PinValue.High);
        driver.Preset(DoorPin, PinValue.High);
        using var inputs = new GpioSafetyInputs(Config, driver, (_, _) => Task.CompletedTask, _time, NullLogger<GpioSafetyInputs>.Instance);
        inputs.Start();
        Assert.Equal(PinMode.Input, driver.ModeOf(EstopPin));
    }

    [Fact]
    public void After_dispose_nothing_trips_and_the_driver_is_released()
    {
        var inputs = Start();
        inputs.Dispose();
        Assert.True(_driver.Disposed);
        _driver.Preset(EstopPin, PinValue.Low);
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.Empty(Trips());
    }

    [Fact]
    public void A_failing_trip_callback_is_contained()
    {
        _driver.Preset(EstopPin, PinValue.High);
        _driver.Preset(DoorPin, PinValue.High);
        var calls = 0;
        using var inputs = new GpioSafetyInputs(Config, _driver, (_, _) =>
        {
            calls++;
            throw new InvalidOperationException("boom");
        }, _time, NullLogger<GpioSafetyInputs>.Instance);
        inputs.Start();
        _driver.SetLevel(EstopPin, PinValue.Low);
        _driver.SetLevel(DoorPin, PinValue.Low);
        Assert.Equal(2, calls);
    }

    [Theory]
    [InlineData(-1, 17, 27, 5)]
    [InlineData(0, null, null, 5)]
    [InlineData(0, 17, 17, 5)]
    [InlineData(0, -3, 27, 5)]
    [InlineData(0, 17, 27, -1)]
    [InlineData(0, 17, 27, 5000)]
    public void Invalid_sections_are_refused(int chip, int? estop, int? door, double debounceMs)
    {
        var config = new GpioInputs { Chip = chip, EstopPin = estop, DoorPin = door, DebounceMs = debounceMs };
        Assert.Throws<InvalidDataException>(config.Check);
        Assert.Throws<InvalidDataException>(() => new GpioSafetyInputs(config, new SimulatedGpioDriver(), (_, _) => Task.CompletedTask, _time, NullLogger<GpioSafetyInputs>.Instance));
    }

    [Fact]
    public async Task Wired_to_the_safety_supervisor_the_estop_input_latches_the_emergency_stop()
    {
        await using var rig = await SimRig.StartAsync();
        var dataDirectory = Directory.CreateTempSubdirectory("smp-gpio-");
        try
        {
            using var ledger = new LedgerStore(Path.Combine(dataDirectory.FullName, "smp.db"), TimeProvider.System);
            using var safety = new SafetySupervisor(rig.Connection, rig.Profile, ledger, TimeProvider.System, NullLogger<SafetySupervisor>.Instance);
            var stopped = new TaskCompletionSource<EmergencyStopState>(TaskCreationOptions.RunContinuationsAsynchronously);
            _driver.Preset(EstopPin, PinValue.High);
            _driver.Preset(DoorPin, PinValue.High);
            // The wiring the host makes (see the report): every trip is an emergency stop.
            using var inputs = new GpioSafetyInputs(Config, _driver, async (source, reason) =>
            {
                stopped.TrySetResult(await safety.EmergencyStopAsync(source, reason, TimeProvider.System.GetTimestamp(), CancellationToken.None));
            }, _time, NullLogger<GpioSafetyInputs>.Instance);
            inputs.Start();
            Assert.False(safety.IsLatched);

            _driver.SetLevel(EstopPin, PinValue.Low);

            Assert.True(safety.IsLatched); // latched before SetLevel returned: the stop bytes went out synchronously
            var state = await stopped.Task.WaitAsync(SimRig.Timeout);
            Assert.Equal(GpioSafetyInputs.EstopSource, state.Source);
            Assert.Contains("feed-hold", state.StopSteps);
            Assert.Equal("", state.StopError);
        }
        finally
        {
            dataDirectory.Delete(recursive: true);
        }
    }
}
