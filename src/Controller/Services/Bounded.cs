using Grpc.Core;

namespace SmpRobot.Controller.Services;

/// <summary>
/// Bounds on the strings a client sends: checked at the service boundary, so an oversized value is
/// refused (INVALID_ARGUMENT) before anything stores, logs or echoes it.
/// </summary>
internal static class Bounded
{
    /// <summary>Ids: sessions, dots, consoles, calibrations.</summary>
    public const int MaxIdLength = 128;

    /// <summary>Names: operators, sources.</summary>
    public const int MaxNameLength = 200;

    /// <summary>Reasons and notes.</summary>
    public const int MaxReasonLength = 2000;

    /// <summary>At most this much of a client's value is quoted back in an error message.</summary>
    public const int MaxEchoLength = 64;

    /// <summary><paramref name="value"/> when at most <paramref name="max"/> characters; INVALID_ARGUMENT otherwise.</summary>
    public static string Text(string value, string field, int max) =>
        value.Length <= max ? value : throw new RpcException(new Status(StatusCode.InvalidArgument, $"{field} is {value.Length} characters long; at most {max} are accepted"));

    /// <summary>A client's value as it may appear in a message: cut to <see cref="MaxEchoLength"/> characters, marked when cut.</summary>
    public static string Echo(string value) => value.Length <= MaxEchoLength ? value : value[..MaxEchoLength] + $"… ({value.Length} characters)";
}
