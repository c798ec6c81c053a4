using Grpc.Core;
using SmpRobot.Contracts.V1;

namespace SmpRobot.Operator.Cli;

/// <summary>Process exit codes of <c>smp</c>; scripts and CI rely on them, so they never change meaning.</summary>
internal static class ExitCodes
{
    /// <summary>Success; for <c>run</c>/<c>demo</c>/<c>watch</c>: the session COMPLETED.</summary>
    public const int Success = 0;

    /// <summary>Anything else: controller unreachable, FAULTED session, refused request (FAILED_PRECONDITION), internal error.</summary>
    public const int Failure = 1;

    /// <summary>Bad input or usage: parse errors, INVALID_ARGUMENT, missing or oversized file, bad <c>--dots</c>.</summary>
    public const int Usage = 2;

    /// <summary>The session was stopped: it ended EMERGENCY_STOPPED or ABORTED.</summary>
    public const int Stopped = 3;

    /// <summary>Exit code for a failed RPC: INVALID_ARGUMENT and OUT_OF_RANGE are the caller's input (2), the rest 1.</summary>
    public static int ForStatus(StatusCode code) => code switch
    {
        StatusCode.InvalidArgument or StatusCode.OutOfRange => Usage,
        _ => Failure,
    };

    /// <summary>Exit code for the state a followed session ended in.</summary>
    public static int ForSessionState(SessionState state) => state switch
    {
        SessionState.Completed => Success,
        SessionState.Aborted or SessionState.EmergencyStopped => Stopped,
        _ => Failure,
    };

    /// <summary>True for the states that end following a session (<c>run</c>, <c>demo</c>, <c>watch</c>).</summary>
    public static bool IsEndState(SessionState state) =>
        state is SessionState.Completed or SessionState.Aborted or SessionState.EmergencyStopped or SessionState.Faulted;
}
