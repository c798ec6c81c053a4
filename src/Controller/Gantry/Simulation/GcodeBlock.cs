using System.Globalization;

namespace SmpRobot.Controller.Gantry.Simulation;

/// <summary>grbl 1.1 status (error) codes the simulator answers with.</summary>
internal static class GrblError
{
    public const int ExpectedCommandLetter = 1;
    public const int BadNumberFormat = 2;
    public const int InvalidStatement = 3;
    public const int NegativeValue = 4;
    public const int SettingDisabled = 5;
    public const int IdleError = 8;
    /// <summary>grbl's STATUS_SOFT_LIMIT_ERROR: soft limits cannot be enabled without homing.</summary>
    public const int SoftLimitError = 10;
    public const int SystemGcLock = 9;
    public const int Overflow = 11;
    public const int TravelExceeded = 15;
    public const int InvalidJogCommand = 16;
    public const int UnsupportedCommand = 20;
    public const int ModalGroupViolation = 21;
    public const int UndefinedFeedRate = 22;
    public const int WordRepeated = 25;
    public const int NoAxisWords = 26;
    public const int ValueWordMissing = 28;
    public const int G53InvalidMotionMode = 30;
    public const int UnusedWords = 36;
    /// <summary>grbl's STATUS_GCODE_INVALID_TARGET: a probe cycle whose target is where the machine already is.</summary>
    public const int InvalidTarget = 37;
}

/// <summary>
/// The words of one G-code block, checked the way grbl checks a block before executing any of it
/// (a block with an error changes nothing). Only the subset this machine uses is supported.
/// </summary>
internal sealed class GcodeBlock
{
    /// <summary>
    /// The motion mode the block names, if any: 0 (G0), 1 (G1), or a probe cycle as 382, 383, 384, 385
    /// (G38.2 towards, error without contact; G38.3 towards, no error; G38.4 and G38.5 away).
    /// </summary>
    public int? Motion { get; private set; }

    /// <summary>True for a probe motion mode (<see cref="Motion"/> 382..385).</summary>
    public static bool IsProbe(int motionMode) => motionMode is >= 382 and <= 385;
    public bool Dwell { get; private set; }
    public bool MachineCoordinates { get; private set; }
    /// <summary>90 or 91 when given.</summary>
    public int? Distance { get; private set; }
    /// <summary>3, 4 or 5 when given.</summary>
    public int? Spindle { get; private set; }
    public double? X { get; private set; }
    public double? Y { get; private set; }
    public double? Z { get; private set; }
    public double? F { get; private set; }
    public double? S { get; private set; }
    public double? P { get; private set; }

    public bool HasAxisWords => X.HasValue || Y.HasValue || Z.HasValue;

    /// <summary>Parses a compacted (upper case, no spaces, no comments) block; returns 0 or a grbl error code.</summary>
    public static int Parse(string line, bool jog, out GcodeBlock block)
    {
        var b = new GcodeBlock();
        block = b;
        var hasUnusedWords = false;
        var otherModal = new HashSet<int>(); // plane, feed mode, coordinate system, cutter comp: accepted, no effect
        var i = 0;
        while (i < line.Length)
        {
            var letter = line[i];
            if (letter is < 'A' or > 'Z') return GrblError.ExpectedCommandLetter;
            i++;
            if (!TryReadNumber(line, ref i, out var value)) return GrblError.BadNumberFormat;
            switch (letter)
            {
                case 'G':
                    {
                        var code = (int)Math.Truncate(value);
                        if (code == 38)
                        {
                            // G38.2..G38.5: grbl's probe cycles, one motion-mode group with G0 and G1.
                            var variant = (int)Math.Round((value - 38) * 10);
                            if (Math.Abs(value - (38 + (variant / 10.0))) > 1e-6 || variant is < 2 or > 5) return GrblError.UnsupportedCommand;
                            if (block.Motion.HasValue) return GrblError.ModalGroupViolation;
                            block.Motion = 380 + variant;
                            break;
                        }
                        if (Math.Abs(value - code) > 1e-6) return GrblError.UnsupportedCommand;
                        switch (code)
                        {
                            case 0 or 1:
                                if (block.Motion.HasValue) return GrblError.ModalGroupViolation;
                                block.Motion = code;
                                break;
                            case 4:
                                if (block.Dwell || block.MachineCoordinates) return GrblError.ModalGroupViolation;
                                block.Dwell = true;
                                break;
                            case 53:
                                if (block.Dwell || block.MachineCoordinates) return GrblError.ModalGroupViolation;
                                block.MachineCoordinates = true;
                                break;
                            case 90 or 91:
                                if (block.Distance.HasValue) return GrblError.ModalGroupViolation;
                                block.Distance = code;
                                break;
                            case 17 or 21 or 40 or 54 or 94:
                                // Each of these is the only supported member of its modal group: accepted as a no-op.
                                if (!otherModal.Add(code)) return GrblError.ModalGroupViolation;
                                break;
                            default:
                                // G20 (inches) included: the machine speaks millimetres only.
                                return GrblError.UnsupportedCommand;
                        }
                        break;
                    }
                case 'M':
                    {
                        var code = (int)Math.Truncate(value);
                        if (Math.Abs(value - code) > 1e-6 || code is not (3 or 4 or 5)) return GrblError.UnsupportedCommand;
                        if (block.Spindle.HasValue) return GrblError.ModalGroupViolation;
                        block.Spindle = code;
                        break;
                    }
                case 'X': if (!Set(value, block.X, v => b.X = v)) return GrblError.WordRepeated; break;
                case 'Y': if (!Set(value, block.Y, v => b.Y = v)) return GrblError.WordRepeated; break;
                case 'Z': if (!Set(value, block.Z, v => b.Z = v)) return GrblError.WordRepeated; break;
                case 'F': if (!Set(value, block.F, v => b.F = v)) return GrblError.WordRepeated; break;
                case 'S': if (!Set(value, block.S, v => b.S = v)) return GrblError.WordRepeated; break;
                case 'P': if (!Set(value, block.P, v => b.P = v)) return GrblError.WordRepeated; break;
                case 'N' or 'T':
                    break; // line number, tool number: accepted and ignored, as grbl does
                case 'I' or 'J' or 'K' or 'R' or 'L':
                    hasUnusedWords = true; // valid grbl words, but only arcs and G10 use them
                    break;
                default:
                    return GrblError.UnsupportedCommand;
            }
        }

        if (block.F < 0 || block.S < 0 || block.P < 0) return GrblError.NegativeValue;
        if (jog)
        {
            if (block.Motion.HasValue || block.Dwell || block.Spindle.HasValue || block.S.HasValue || block.P.HasValue
                || otherModal.Count > (otherModal.Contains(21) ? 1 : 0) || hasUnusedWords)
            {
                return GrblError.InvalidJogCommand;
            }
            if (!block.F.HasValue) return GrblError.UndefinedFeedRate;
            if (!block.HasAxisWords) return GrblError.NoAxisWords;
            return 0;
        }
        if (block.Dwell && !block.P.HasValue) return GrblError.ValueWordMissing;
        if (!block.Dwell && block.P.HasValue) return GrblError.UnusedWords;
        if (hasUnusedWords) return GrblError.UnusedWords;
        return 0;
    }

    private static bool Set(double value, double? current, Action<double> set)
    {
        if (current.HasValue) return false;
        set(value);
        return true;
    }

    /// <summary>grbl's number syntax: optional sign, digits with at most one '.', no exponent.</summary>
    private static bool TryReadNumber(string line, ref int i, out double value)
    {
        var start = i;
        if (i < line.Length && line[i] is '+' or '-') i++;
        var digits = 0;
        var dot = false;
        while (i < line.Length)
        {
            var c = line[i];
            if (c is >= '0' and <= '9') digits++;
            else if (c == '.' && !dot) dot = true;
            else break;
            i++;
        }
        value = 0;
        return digits > 0 && double.TryParse(line.AsSpan(start, i - start), NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out value);
    }
}
