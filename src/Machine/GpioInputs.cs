namespace SmpRobot.Machine;

/// <summary>
/// Optional host inputs on the controller computer's GPIO (profile section <c>"gpio"</c>): an e-stop
/// contact, a door switch and the operator's foot pedal. They are supplements to the hard-wired e-stop chain, never a
/// replacement (hardware/WIRING.md). Absent section = no GPIO.
/// </summary>
/// <remarks>
/// Wire both inputs fail-safe: a normally-closed contact that holds the pin at its inactive level
/// while the circuit is whole. The pin is biased towards its active level (pull-down when
/// <see cref="ActiveLow"/>, pull-up otherwise), so a cut wire or an unplugged connector reads as
/// "pressed"/"open".
/// </remarks>
public sealed record GpioInputs
{
    /// <summary>GPIO chip number (<c>/dev/gpiochipN</c>). Default 0.</summary>
    public int Chip { get; init; }

    /// <summary>Line offset of the e-stop contact on the chip; null = none.</summary>
    public int? EstopPin { get; init; }

    /// <summary>Line offset of the door switch on the chip; null = none.</summary>
    public int? DoorPin { get; init; }

    /// <summary>True (default): low level = e-stop pressed / door open.</summary>
    public bool ActiveLow { get; init; } = true;

    /// <summary>
    /// Line offset of the operator's foot pedal (a normally-open dead-man switch: the machine works
    /// only while it is held); null = none. The pin is biased towards "released" (pull-up when
    /// <see cref="PedalPressedLow"/>), so a cut wire or an unplugged pedal reads as released and the
    /// machine holds.
    /// </summary>
    public int? PedalPin { get; init; }

    /// <summary>True (default): the held pedal pulls the pin low (pull-up bias); false: high (pull-down bias).</summary>
    public bool PedalPressedLow { get; init; } = true;

    /// <summary>
    /// Line offset of the patient's hand switch (normally closed, in the patient's hand: pressing it
    /// opens the contact and pauses the session, "paused by the patient"; resuming is the operator's);
    /// null = none. Biased like the pedal, so a cut wire reads as pressed.
    /// </summary>
    public int? PatientSwitchPin { get; init; }

    /// <summary>True (default): the closed (not pressed) switch pulls the pin low (pull-up bias).</summary>
    public bool PatientSwitchClosedLow { get; init; } = true;

    /// <summary>
    /// Line offset of an output that drives a lamp or buzzer (through a transistor or relay, never the
    /// pin itself) while the machine needs the operator: a session held, faulted or stopped, or the
    /// e-stop latched. Null = none.
    /// </summary>
    public int? AttentionOutputPin { get; init; }

    /// <summary>True (default): the output goes high for attention.</summary>
    public bool AttentionOutputActiveHigh { get; init; } = true;

    /// <summary>Contact bounce of the pedal and the patient's switch ignored after they disengage before engaging counts again, ms (disengaging always acts at once). Default 20.</summary>
    public double SwitchDebounceMs { get; init; } = 20;

    /// <summary>
    /// How long an input must read inactive before it is re-armed, ms (contact bounce on release).
    /// Activation is never delayed: the first edge towards active trips at once. Default 5.
    /// </summary>
    public double DebounceMs { get; init; } = 5;

    /// <summary>Throws <see cref="InvalidDataException"/> when the section cannot describe real inputs.</summary>
    public void Check()
    {
        var errors = new List<string>();
        if (Chip < 0) errors.Add("gpio.chip must be >= 0");
        int?[] pins = [EstopPin, DoorPin, PedalPin, PatientSwitchPin, AttentionOutputPin];
        if (pins.All(p => p is null)) errors.Add("gpio needs estopPin, doorPin, pedalPin, patientSwitchPin or attentionOutputPin (leave the section out for no GPIO)");
        if (pins.Any(p => p < 0)) errors.Add("gpio pins must be >= 0");
        if (pins.Where(p => p is not null).GroupBy(p => p).Any(g => g.Count() > 1)) errors.Add("gpio.estopPin, doorPin, pedalPin, patientSwitchPin and attentionOutputPin must differ");
        if (!(SwitchDebounceMs >= 0 && SwitchDebounceMs <= 200)) errors.Add("gpio.switchDebounceMs must be in [0, 200]");
        if (!(DebounceMs >= 0 && DebounceMs <= 1000)) errors.Add("gpio.debounceMs must be in [0, 1000]");
        if (errors.Count > 0) throw new InvalidDataException("gpio inputs are not valid: " + string.Join("; ", errors));
    }
}
