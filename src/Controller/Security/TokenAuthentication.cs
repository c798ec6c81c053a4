using System.Security.Claims;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;

namespace SmpRobot.Controller.Security;

/// <summary>How the controller lets callers in.</summary>
public sealed record AccessMode
{
    /// <summary>
    /// Development and CI only: no token is asked for and every caller may do everything. The controller accepts it
    /// only on a loopback address without TLS, and says so at start-up.
    /// </summary>
    public bool InsecureLoopback { get; init; }
}

/// <summary>
/// Authenticates every gRPC call by its personal access token (<c>authorization: Bearer smp_…</c>) against the
/// in-memory <see cref="UserDirectory"/>, and answers refusals the gRPC way (a trailers-only response with
/// UNAUTHENTICATED or PERMISSION_DENIED and a message saying what to do) instead of a bare HTTP 401/403.
/// </summary>
public sealed class TokenAuthenticationHandler(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder, UserDirectory users, AccessMode mode)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    /// <summary>The scheme's name.</summary>
    public const string SchemeName = "smp-token";

    private const string Bearer = "Bearer ";

    /// <summary>The identity behind an authenticated principal, or null.</summary>
    public static CallerIdentity? IdentityOf(ClaimsPrincipal user)
    {
        ArgumentNullException.ThrowIfNull(user);
        if (user.Identity?.IsAuthenticated != true || user.Identity.Name is not { } name) return null;
        var role = user.FindFirst(ClaimTypes.Role)?.Value;
        return role is null ? null : new CallerIdentity(name, Roles.Parse(role));
    }

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (mode.InsecureLoopback) return Task.FromResult(Success(CallerIdentity.InsecureLoopback));
        string? header = Request.Headers.Authorization;
        if (string.IsNullOrEmpty(header)) return Task.FromResult(AuthenticateResult.NoResult());
        if (!header.StartsWith(Bearer, StringComparison.OrdinalIgnoreCase)) return Task.FromResult(AuthenticateResult.Fail("the authorization header is not a bearer token"));
        var identity = users.Authenticate(header[Bearer.Length..].Trim());
        return Task.FromResult(identity is null ? AuthenticateResult.Fail("unknown or revoked token") : Success(identity));
    }

    private static AuthenticateResult Success(CallerIdentity identity)
    {
        var principal = new ClaimsPrincipal(new ClaimsIdentity([new Claim(ClaimTypes.Name, identity.Name), new Claim(ClaimTypes.Role, identity.Role.Name())], SchemeName));
        return AuthenticateResult.Success(new AuthenticationTicket(principal, SchemeName));
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        var result = await HandleAuthenticateOnceSafeAsync();
        var why = result.Failure?.Message ?? "no access token";
        Services.GrpcPipeline.Refuse(Context, Grpc.Core.StatusCode.Unauthenticated, $"{why}: give a user's token (SMP_TOKEN, or --token-file FILE); an admin adds users with smp-controller user add NAME --role ROLE");
    }

    protected override Task HandleForbiddenAsync(AuthenticationProperties properties)
    {
        var path = Services.GrpcPipeline.MethodPath(Context);
        var needed = RpcPolicies.Of(path)?.MinimumRole;
        var who = IdentityOf(Context.User);
        var message = needed is { } role
            ? $"{who?.Name ?? "this user"} ({who?.Role.Name() ?? "no role"}) may not call {path}: it needs the {role.Name()} role"
            : $"{path} has no access policy: nobody may call it";
        if (who is not null && RpcPolicies.Of(path) is { Audited: true })
        {
            // A refused attempt to change something is a security event: it goes into the audit log (its body is never read).
            var store = Context.RequestServices.GetRequiredService<Storage.LedgerStore>();
            store.AppendCallAudit(Context.RequestServices.GetRequiredService<TimeProvider>().GetUtcNow(), who.Name, who.Role.Name(), path, null, "", "PermissionDenied: " + message);
        }
        Services.GrpcPipeline.Refuse(Context, Grpc.Core.StatusCode.PermissionDenied, message);
        return Task.CompletedTask;
    }
}
