namespace XenAoe.Control.Store;

/// <summary>
/// One controller leads at a time; standbys campaign and take over when the leader dies or resigns. One instance serves
/// one candidate; dispose it to stop without resigning (as a crash would: others take over once the lease or lock lapses).
/// </summary>
public interface ILeaderElection : IAsyncDisposable
{
    /// <summary>True from the return of <see cref="CampaignAsync"/> until leadership is lost or resigned.</summary>
    bool IsLeader { get; }

    /// <summary>
    /// Cancelled when this candidate stops leading (lease lost, resigned, disposed). Before the first successful campaign it
    /// is already cancelled; each successful campaign gives a fresh token.
    /// </summary>
    CancellationToken LeadershipLost { get; }

    /// <summary>Waits until <paramref name="candidateId"/> leads, then returns.</summary>
    /// <exception cref="OperationCanceledException"><paramref name="ct"/> was cancelled first.</exception>
    Task CampaignAsync(string candidateId, CancellationToken ct = default);

    /// <summary>Gives up leadership at once so a standby can take over; does nothing when not leading.</summary>
    Task ResignAsync(CancellationToken ct = default);

    /// <summary>The current leader's candidate id, or null when nobody leads (as far as this backend can see).</summary>
    Task<string?> GetLeaderAsync(CancellationToken ct = default);
}
