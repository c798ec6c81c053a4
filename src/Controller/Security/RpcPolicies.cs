using System.Collections.Frozen;

namespace SmpRobot.Controller.Security;

/// <summary>Who may call one method, and whether the call goes into the audit log.</summary>
/// <param name="MinimumRole">The lowest role allowed; null for a call any caller may make, signed in or not (health).</param>
/// <param name="Audited">A state-changing call: every attempt is recorded with its caller, arguments and result.</param>
public sealed record RpcPolicy(Role? MinimumRole, bool Audited);

/// <summary>
/// The role policy of every gRPC method the controller serves, by its path ("/smprobot.v1.SessionService/Start").
/// A method missing here is refused to everyone (PERMISSION_DENIED): a new RPC must be given its policy, and a test
/// walks every service descriptor to make sure each one has.
/// </summary>
public static class RpcPolicies
{
    private const string Safety = "/smprobot.v1.SafetyService/";
    private const string Session = "/smprobot.v1.SessionService/";
    private const string Machine = "/smprobot.v1.MachineService/";
    private const string Camera = "/smprobot.v1.CameraService/";
    private const string Calibration = "/smprobot.v1.CalibrationService/";
    private const string Surface = "/smprobot.v1.SurfaceService/";
    private const string Access = "/smprobot.v1.AccessService/";
    private const string Treatment = "/smprobot.v1.TreatmentService/";

    private static RpcPolicy Reads => new(Role.Observer, false);

    private static RpcPolicy Changes(Role role) => new(role, true);

    /// <summary>Every method's policy.</summary>
    public static FrozenDictionary<string, RpcPolicy> All { get; } = new Dictionary<string, RpcPolicy>(StringComparer.Ordinal)
    {
        // Any authenticated caller may stop the machine: refusing an e-stop is never the safe side.
        [Safety + "EmergencyStop"] = Changes(Role.Observer),
        [Safety + "ResetEmergencyStop"] = Changes(Role.Operator),
        [Safety + "GetSafetyStatus"] = Reads,
        // The dead-man: only an operator's console counts as someone watching the session.
        [Safety + "OperatorHeartbeat"] = new(Role.Operator, false),

        [Session + "ValidatePlan"] = Reads,
        [Session + "CreateSession"] = Changes(Role.Operator),
        [Session + "Start"] = Changes(Role.Operator),
        [Session + "Pause"] = Changes(Role.Operator),
        [Session + "Resume"] = Changes(Role.Operator),
        [Session + "Abort"] = Changes(Role.Operator),
        [Session + "Get"] = Reads,
        [Session + "List"] = Reads,
        [Session + "Watch"] = Reads,
        [Session + "ResolveDots"] = Changes(Role.Operator),
        [Session + "ContinueInNewSession"] = Changes(Role.Operator),
        [Session + "CheckStart"] = Reads,

        [Machine + "Connect"] = Changes(Role.Operator),
        [Machine + "Home"] = Changes(Role.Operator),
        [Machine + "Jog"] = Changes(Role.Operator),
        [Machine + "GetStatus"] = Reads,
        [Machine + "WatchStatus"] = Reads,
        [Machine + "FirmwareSettings"] = Reads,

        [Camera + "GetPreview"] = Reads,
        [Camera + "RenderBoard"] = Reads,

        [Calibration + "CalibrateIntrinsics"] = Changes(Role.Engineer),
        [Calibration + "CalibrateGantry"] = Changes(Role.Engineer),
        // The daily check an operator runs before sessions; it measures, it does not change the calibration.
        [Calibration + "CheckDrift"] = Changes(Role.Operator),
        [Calibration + "ListCalibrations"] = Reads,
        [Calibration + "GetCalibration"] = Reads,

        // Probing is a step of every session on a head model (smp run probes each head position first).
        [Surface + "ProbeSurface"] = Changes(Role.Operator),
        [Surface + "ListSurfaceRegistrations"] = Reads,
        [Surface + "SurfaceNeeded"] = Reads,

        // The operator who runs the sessions starts a client's treatment from the practitioner's design and makes its next session.
        [Treatment + "StartTreatment"] = Changes(Role.Operator),
        [Treatment + "NextSession"] = Changes(Role.Operator),
        [Treatment + "TouchUp"] = Changes(Role.Operator),
        // The first step of a later session, like probing: the operator's.
        [Treatment + "MatchEarlierDots"] = Changes(Role.Operator),
        [Treatment + "GetTreatment"] = Reads,
        [Treatment + "ListTreatments"] = Reads,
        [Treatment + "ListTreatmentDots"] = Reads,
        [Treatment + "SessionReport"] = Reads,
        [Treatment + "TreatmentReport"] = Reads,

        [Access + "AddUser"] = Changes(Role.Admin),
        [Access + "RevokeUser"] = Changes(Role.Admin),
        [Access + "ListUsers"] = new(Role.Admin, false),
        [Access + "ListAudit"] = new(Role.Operator, false),
        [Access + "WhoAmI"] = Reads,

        // Load balancers and the CLI's readiness wait ask without a token; the answer says nothing private.
        ["/grpc.health.v1.Health/Check"] = new(null, false),
        ["/grpc.health.v1.Health/Watch"] = new(null, false),
        ["/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"] = Reads,
        ["/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"] = Reads,
    }.ToFrozenDictionary(StringComparer.Ordinal);

    /// <summary>The policy of <paramref name="path"/>, or null for a method without one (refused to everyone).</summary>
    public static RpcPolicy? Of(string path) => All.GetValueOrDefault(path);

    /// <summary>Authorization policy names: one per role, and one that refuses everyone.</summary>
    public static string PolicyName(Role role) => "role:" + role.Name();

    /// <summary>The authorization policy that refuses every caller (a method without a policy).</summary>
    public const string DenyPolicy = "deny";
}
