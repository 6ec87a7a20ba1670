-- What each head "train now" fitted was measured to do (flows/pipeline/train_now.py): one row
-- per registered head, so the Label page can show the new head's report beside the last one.
-- The files of the head (ONNX, labels, report.json/md, confusion PNG) stay in the model folder.
create schema if not exists training;

create table if not exists training.head_reports (
    model_id          varchar primary key,   -- name@version, as registered
    task              varchar not null,      -- 'species' (behaviour heads train from clips)
    embedder          varchar not null,      -- model@version of the embedder it reads
    trained_at        timestamp not null,
    split             varchar not null,      -- burst / site / image
    n_train           integer not null,
    n_validation      integer not null,
    accuracy          double,
    baseline_accuracy double,
    macro_f1          double,
    labels            varchar[] not null,
    per_class         json not null,         -- [{label, precision, recall, f1, support}]
    confusion         json not null,         -- rows: true label, columns: predicted (labels order)
    excluded_classes  json,                  -- labels with too few examples: {label: n}
    report_path       varchar                -- the report.md in the model folder
);
