using Grpc.Core;

namespace SmpRobot.Controller.Services;

/// <summary>
/// Bounds on the strings a client sends: checked at the service boundary, so an oversized value is
/// refused (INVALID_ARGUMENT, naming the field and the limit, never quoting the value) before anything
/// stores, logs or echoes it.
/// </summary>
internal static class Bounded
{
    /// <summary>Ids: sessions, dots, consoles, calibrations.</summary>
    public const int MaxIdLength = 128;

    /// <summary>Names: operators, sources.</summary>
    public const int MaxNameLength = 200;

    /// <summary>Reasons and notes.</summary>
    public const int MaxReasonLength = 2000;

    /// <summary><paramref name="value"/> when at most <paramref name="max"/> characters; INVALID_ARGUMENT otherwise.</summary>
    public static string Text(string value, string field, int max) =>
        value.Length <= max ? value : throw new RpcException(new Status(StatusCode.InvalidArgument, $"{field} is {value.Length} characters long; at most {max} are accepted"));

    /// <summary><paramref name="value"/> cut to <paramref name="max"/> characters (for fields that must never be refused).</summary>
    public static string Cut(string value, int max) => value.Length <= max ? value : value[..max];
}
