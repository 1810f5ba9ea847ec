"""The preference losses in plain PyTorch, written from the DPO, IPO and ORPO papers and TRL
1.16's documented choices (docs/training.md, "Objectives"): the fresh-clone reference for
medtune's DPO/ORPO, itself checked against TRL's own code in check_pref_trl.py. Only torch is
imported, so both the test venv (torch 1.13) and the oracle venv load it."""
import torch
import torch.nn.functional as F


def token_logps(logits, targets):
    """[R, T] log p(target) (0 where target < 0) from logits [R, T, V]."""
    lp = torch.log_softmax(logits, dim=-1)
    t = targets.long().clamp(min=0)
    out = lp.gather(-1, t[..., None])[..., 0]
    return torch.where(targets >= 0, out, torch.zeros_like(out))


def dpo_losses(logp, ref, n, beta, loss="sigmoid", label_smoothing=0.0):
    """Per-pair DPO loss. logp, ref: [2P] summed response log-probabilities of the policy and
    the reference, chosen rows first; n: [2P] response token counts."""
    P = logp.shape[0] // 2
    lr = logp - ref
    delta = lr[:P] - lr[P:]
    if loss == "sigmoid":  # conservative DPO; label_smoothing 0 is the original DPO
        return (-(1 - label_smoothing) * F.logsigmoid(beta * delta)
                - label_smoothing * F.logsigmoid(-beta * delta))
    if loss == "hinge":
        return torch.relu(1 - beta * delta)
    if loss == "ipo":  # log-ratios per response token, as TRL normalises them
        nn = n.clamp(min=1.0)
        d = lr[:P] / nn[:P] - lr[P:] / nn[P:]
        return (d - 1 / (2 * beta)) ** 2
    raise ValueError(loss)


def dpo_metrics(logp, ref, beta):
    P = logp.shape[0] // 2
    rc, rr = beta * (logp[:P] - ref[:P]), beta * (logp[P:] - ref[P:])
    return {"rewards/chosen": rc.mean().item(), "rewards/rejected": rr.mean().item(),
            "rewards/margins": (rc - rr).mean().item(),
            "rewards/accuracies": (rc > rr).float().mean().item(),
            "logps/chosen": logp[:P].mean().item(), "logps/rejected": logp[P:].mean().item()}


def orpo_terms(avg, beta):
    """ORPO on mean response log-probabilities avg [2P]: per-pair -beta log sigmoid(log odds),
    log sigmoid(log odds) and the log odds, log(p/(1-p)) of chosen minus that of rejected."""
    P = avg.shape[0] // 2
    ac, ar = avg[:P].double(), avg[P:].double()
    log_odds = (ac - ar) - (torch.log(-torch.expm1(ac)) - torch.log(-torch.expm1(ar)))
    ratio = F.logsigmoid(log_odds)
    return -beta * ratio, ratio, log_odds


def orpo_metrics(avg, nll, beta, ratio, log_odds):
    P = avg.shape[0] // 2
    rc, rr = beta * avg[:P], beta * avg[P:]
    return {"rewards/chosen": rc.mean().item(), "rewards/rejected": rr.mean().item(),
            "rewards/margins": (rc - rr).mean().item(),
            "rewards/accuracies": (rc > rr).float().mean().item(),
            "logps/chosen": avg[:P].mean().item(), "logps/rejected": avg[P:].mean().item(),
            "nll_loss": nll.item(), "log_odds_ratio": ratio.mean().item(),
            "log_odds_chosen": log_odds.mean().item()}
