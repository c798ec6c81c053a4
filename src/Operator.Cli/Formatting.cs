using System.Globalization;
using SmpRobot.Contracts.V1;

namespace SmpRobot.Operator.Cli;

/// <summary>Invariant-culture formatting shared by the views, summaries and JSON.</summary>
internal static class Formatting
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>"COMPLETED" for SESSION_STATE_COMPLETED: the proto enum name without its prefix.</summary>
    public static string StateName(SessionState state) => state switch
    {
        SessionState.Unspecified => "UNSPECIFIED",
        SessionState.Created => "CREATED",
        SessionState.Running => "RUNNING",
        SessionState.Pausing => "PAUSING",
        SessionState.Paused => "PAUSED",
        SessionState.Completed => "COMPLETED",
        SessionState.Aborted => "ABORTED",
        SessionState.EmergencyStopped => "EMERGENCY_STOPPED",
        SessionState.Faulted => "FAULTED",
        _ => ((int)state).ToString(Inv),
    };

    /// <summary>Human duration: "42.0 s", "3 min 05 s", "2 h 04 min 10 s".</summary>
    public static string Duration(double seconds)
    {
        if (double.IsNaN(seconds) || seconds < 0) return "-";
        if (seconds < 60) return seconds.ToString("0.0", Inv) + " s";
        var whole = (long)Math.Round(seconds);
        var h = whole / 3600;
        var m = whole % 3600 / 60;
        var s = whole % 60;
        return h > 0
            ? string.Format(Inv, "{0} h {1:00} min {2:00} s", h, m, s)
            : string.Format(Inv, "{0} min {1:00} s", m, s);
    }

    public static string Number(double value, string format = "0.00") => value.ToString(format, Inv);

    public static string Mm(double value) => value.ToString("0.000", Inv);
}
